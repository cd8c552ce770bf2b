"""Serves each error answer named in the file argv[1] ([{status, code}]) and reports how the
Python client surfaced it: {code: "STATUS CODE" of the typed error}."""

import json
import pathlib
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "sdk" / "python"))

from portcullis import Client, PortcullisError  # noqa: E402

answers = json.loads(pathlib.Path(sys.argv[1]).read_text())
current = {}


class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.dumps({"decision": "DENY", "decision_id": "dec_1", "action": "block", "error": {"code": current["code"], "message": "m"}}).encode()
        self.send_response(current["status"])
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
client = Client(f"http://127.0.0.1:{srv.server_address[1]}", api_key="k", retries=0)
got = {}
for a in answers:
    current.update(a)
    for call in (lambda: client.decide("t"), lambda: client.outcome("dec_1")):
        try:
            call()
            seen = "no error"
        except PortcullisError as e:
            seen = f"{e.status} {e.code}"
        got[a["code"]] = seen if got.get(a["code"], seen) == seen else got[a["code"]] + " / " + seen
srv.shutdown()
print(json.dumps(got))
