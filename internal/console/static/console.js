// Portcullis console: the live approvals queue. No inline script anywhere (the
// Content-Security-Policy forbids it); this file is the console's only script.
"use strict";
(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource) {
    return;
  }
  var rows = document.getElementById("queue-rows");
  var busy = false;
  function refresh() {
    if (busy) {
      return;
    }
    busy = true;
    fetch(live.dataset.rows, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.status === 401) {
          window.location.reload();
          return null;
        }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined) {
          // The fragment is rendered by the server's html/template, escaped like the page.
          rows.innerHTML = html;
        }
      })
      .finally(function () { busy = false; });
  }
  var es = new EventSource(live.dataset.events);
  es.addEventListener("queue", refresh);
  es.onerror = function () { live.classList.add("offline"); };
  es.onopen = function () { live.classList.remove("offline"); };
})();
