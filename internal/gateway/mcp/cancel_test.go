package mcp

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// rawAgent is an agent speaking newline-delimited JSON-RPC to the gateway's stdio transport, so
// the test sees every line the gateway writes, including those an SDK client would discard.
type rawAgent struct {
	t     *testing.T
	w     *os.File
	lines chan string
}

func newRawAgent(t *testing.T, h *harness) *rawAgent {
	t.Helper()
	inR, inW, outR, outW := osPipes(t)
	ss, err := h.srv.Connect(context.Background(), NewStdioTransport(inR, outW, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &rawAgent{t: t, w: inW, lines: make(chan string, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(outR)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = ss.Close()
		_ = ss.Wait()
		inW.Close()
		inR.Close()
		outW.Close()
		outR.Close()
		<-done
	})
	return a
}

func (a *rawAgent) send(line string) {
	a.t.Helper()
	if _, err := a.w.WriteString(line + "\n"); err != nil {
		a.t.Fatal(err)
	}
}

// until returns the lines read until one answering id arrives (included), failing after d.
func (a *rawAgent) until(id string, d time.Duration) []string {
	a.t.Helper()
	var got []string
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case l := <-a.lines:
			got = append(got, l)
			var m struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
			}
			if json.Unmarshal([]byte(l), &m) == nil && m.Method == "" && string(m.ID) == id {
				return got
			}
		case <-timer.C:
			a.t.Fatalf("no answer to id %s in %v; got %q", id, d, got)
		}
	}
}

// A request the agent cancelled (notifications/cancelled) is not answered, as MCP says; the
// call is cancelled upstream, and the session goes on answering the agent's other requests.
func TestCancelledRequestNotAnswered(t *testing.T) {
	h := newHarness(t, time.Second, 30*time.Second)
	a := newRawAgent(t, h)
	a.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	a.until("1", 10*time.Second)
	a.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	a.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"up__hang","arguments":{"text":""}}}`)
	time.Sleep(200 * time.Millisecond) // the call reaches the upstream and hangs there
	a.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":"user stopped it"}}`)
	// A cancellation for an id never sent, and one for a string id, change nothing.
	a.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"2"}}`)
	a.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":99}}`)
	a.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"up__echo","arguments":{"text":"after"}}}`)
	got := a.until("3", 10*time.Second)
	if !strings.Contains(got[len(got)-1], "after") {
		t.Errorf("echo after a cancellation: %s", got[len(got)-1])
	}
	// The hung call, cancelled upstream, ends at once; give its answer time to (not) arrive.
	time.Sleep(500 * time.Millisecond)
	a.send(`{"jsonrpc":"2.0","id":4,"method":"ping"}`)
	got = append(got, a.until("4", 10*time.Second)...)
	for _, l := range got {
		if strings.Contains(l, `"id":2`) {
			t.Errorf("the cancelled request was answered: %s", l)
		}
	}
	// A request with the same id as the cancelled one, sent later, is answered.
	a.send(`{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	a.until("2", 10*time.Second)
}
