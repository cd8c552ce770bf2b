package mcp

import (
	"encoding/json"
	"testing"
)

// canonID matches ids as the go-sdk does: a request's 2, 2.0 and a cancellation's 2 are one id,
// "2" another; anything that is no id matches nothing.
func TestCanonID(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{`2`, "n:2"}, {` 2.0 `, "n:2"}, {`-7`, "n:-7"}, {`"2"`, "s:2"}, {`"a\u00e9"`, "s:aé"},
		{`2.5`, ""}, {`1e300`, ""}, {`null`, ""}, {`{}`, ""}, {`[1]`, ""}, {``, ""}, {`"unterminated`, ""}, {`true`, ""},
	} {
		if got := canonID(json.RawMessage(c.raw)); got != c.want {
			t.Errorf("canonID(%s) = %q, want %q", c.raw, got, c.want)
		}
	}
}

// eventData reads the data of exactly the events the SDK writes for messages.
func TestEventData(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"event: message\nid: s_3\ndata: {\"id\":1}\n\n", `{"id":1}`, true},
		{"event: message\ndata: {}\n\n", `{}`, true},
		{"event: prime\nid: s_1\ndata: \n\n", "", false},
		{": ok\n\n", "", false},
		{"event: message\nid: s_3\ndata: {\"id\":1}", "", false}, // half an event
		{"event: message\nid: s_3\n\n", "", false},
	} {
		got, ok := eventData([]byte(c.in))
		if ok != c.ok || string(got) != c.want {
			t.Errorf("eventData(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// Hostile bodies (nested, huge numbers, invalid UTF-8, half-written) never panic the filter.
func FuzzCancelledAnswersNote(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`))
	f.Add([]byte(`[{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}]`))
	f.Add([]byte("{\"id\":\xff,\"method\":"))
	f.Fuzz(func(t *testing.T, body []byte) {
		c := NewCancelledAnswers(1 << 20)
		c.note("s", nil, body)
		c.note("s", nil, []byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`))
		c.dropAnswer("s", body, true)
		c.forgetSession("s")
	})
}
