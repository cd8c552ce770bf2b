package e2e

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sseEvent is one server-sent event.
type sseEvent struct{ id, data string }

// readEvents reads events from an SSE body until stop returns true or the body ends.
func readEvents(t *testing.T, resp *http.Response, stop func(sseEvent) bool) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "id:"):
			cur.id = strings.TrimSpace(strings.TrimPrefix(l, "id:"))
		case strings.HasPrefix(l, "data:"):
			cur.data += strings.TrimSpace(strings.TrimPrefix(l, "data:"))
		case l == "":
			if cur.id != "" || cur.data != "" {
				out = append(out, cur)
				if stop(cur) {
					return out
				}
			}
			cur = sseEvent{}
		}
	}
	return out
}

// TestMCPHTTPResumesDroppedStream: on serve's /mcp every SSE event has an id and a call's stream
// opens with a priming event; a client whose connection drops mid-call resumes with
// Last-Event-ID on a GET and receives the call's result.
func TestMCPHTTPResumesDroppedStream(t *testing.T) {
	everything := everythingServer(t)
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, allowAll)
	appendConfig(t, dir, "mcp:\n  upstreams:\n    - name: ev\n      command: node\n      args: [\""+everything+"\", \"stdio\"]\n")
	d := startServe(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	post := func(sid, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.url+"/mcp", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+agentKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	init := post("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	sid := init.Header.Get("Mcp-Session-Id")
	evs := readEvents(t, init, func(e sseEvent) bool { return strings.Contains(e.data, `"id":1`) })
	init.Body.Close()
	if sid == "" || len(evs) == 0 || evs[len(evs)-1].id == "" {
		t.Fatalf("initialize: session %q, events %+v: want an SSE answer with an event id", sid, evs)
	}
	post(sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`).Body.Close()

	// A call that takes two seconds; the client drops the connection after the first event.
	call := post(sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ev__trigger-long-running-operation","arguments":{"duration":2,"steps":2}}}`)
	first := readEvents(t, call, func(sseEvent) bool { return true })
	call.Body.Close()
	if len(first) != 1 || first[0].id == "" {
		t.Fatalf("the call's stream opened with %+v, want a priming event with an id", first)
	}
	if strings.Contains(first[0].data, "Long running operation completed") {
		t.Fatalf("the result came first: %+v", first)
	}

	// Until the server notices the dropped connection the stream is still attached (409): a
	// client retries, as the SDKs' clients do.
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.url+"/mcp", nil)
		req.Header.Set("Authorization", "Bearer "+agentKey)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		req.Header.Set("Last-Event-ID", first[0].id)
		var err error
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusConflict || time.Now().After(deadline) {
			break
		}
		resp.Body.Close()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("resume with Last-Event-ID: %d", resp.StatusCode)
	}
	rest := readEvents(t, resp, func(e sseEvent) bool { return strings.Contains(e.data, `"id":2`) })
	if len(rest) == 0 || !strings.Contains(rest[len(rest)-1].data, "Long running operation completed") {
		t.Fatalf("resumed stream: %+v, want the call's result\n%s", rest, d.stderr.String())
	}

}
