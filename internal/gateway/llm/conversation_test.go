package llm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// convChecker is fakeChecker with Conversations: it links response IDs in a map and records the
// session of every question it is asked.
type convChecker struct {
	*fakeChecker
	mu       sync.Mutex
	links    map[string]string
	linkErr  error
	findErr  error
	sessions []string // of each CheckToolCall and InspectContent, in order
}

func (c *convChecker) Authenticate(r *http.Request) (Caller, error) {
	caller, err := c.fakeChecker.Authenticate(r)
	caller.Session = r.Header.Get(SessionHeader)
	return caller, err
}

func (c *convChecker) note(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sessions = append(c.sessions, s)
}

func (c *convChecker) CheckToolCall(ctx context.Context, caller Caller, call ToolCall) (Verdict, error) {
	c.note(caller.Session)
	return c.fakeChecker.CheckToolCall(ctx, caller, call)
}

func (c *convChecker) InspectContent(ctx context.Context, caller Caller, content Content) (ContentVerdict, error) {
	c.note(caller.Session)
	return c.fakeChecker.InspectContent(ctx, caller, content)
}

func (c *convChecker) LinkResponse(_ context.Context, caller Caller, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.linkErr != nil {
		return c.linkErr
	}
	c.links[caller.AgentID+"/"+id] = caller.Session
	return nil
}

func (c *convChecker) ContinuedSession(_ context.Context, caller Caller, id string) (string, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.findErr != nil {
		return "", false, c.findErr
	}
	s, ok := c.links[caller.AgentID+"/"+id]
	return s, ok, nil
}

// last returns the sessions asked about since the previous call of last, each once.
func (c *convChecker) last() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, s := range c.sessions {
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	c.sessions = nil
	return out
}

func convRig(t *testing.T, fixtureName, contentType string) (*convChecker, *httptest.Server) {
	t.Helper()
	up := &fakeUpstream{t: t, status: http.StatusOK, contentType: contentType, body: fixture(t, fixtureName)}
	up.srv = httptest.NewServer(up)
	t.Cleanup(up.srv.Close)
	ck := &convChecker{fakeChecker: newChecker(), links: map[string]string{}}
	base := up.srv.URL + "/v1"
	gw, err := New(Config{Upstreams: map[Format]Upstream{ChatCompletions: {BaseURL: base, APIKey: providerKey}, Responses: {BaseURL: base, APIKey: providerKey}, Messages: {BaseURL: base, APIKey: providerKey}},
		Timeout: 10 * time.Second, StreamIdleTimeout: 10 * time.Second}, ck)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return ck, srv
}

func convPost(t *testing.T, srv *httptest.Server, path, session, body string) (int, string) {
	t.Helper()
	r, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+agentKey)
	r.Header.Set("Content-Type", "application/json")
	if session != "" {
		r.Header.Set(SessionHeader, session)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// one asserts the last model call was decided in exactly one session, and returns it.
func one(t *testing.T, ck *convChecker) string {
	t.Helper()
	got := ck.last()
	if len(got) != 1 {
		t.Fatalf("one model call decided in sessions %q", got)
	}
	return got[0]
}

// A stateless conversation (Chat Completions, Messages) without a session header is placed by
// its beginning: every turn of it in one session, another conversation in another, and the
// header, when sent, wins.
func TestConversationSessionFromItsBeginning(t *testing.T) {
	for _, tc := range []struct {
		path, fixture, first, later, other string
	}{
		{"/v1/chat/completions", "chat_one_tool.json",
			`{"model":"m","messages":[{"role":"system","content":"You are a mail assistant."},{"role":"user","content":"Weather in Paris?"}]}`,
			`{"model":"m","messages":[{"role":"system","content":"You are a mail assistant."},{"role":"user","content":"Weather in Paris?"},{"role":"assistant","content":"Sunny."},{"role":"user","content":"Mail it to Bob."}]}`,
			`{"model":"m","messages":[{"role":"system","content":"You are a mail assistant."},{"role":"user","content":"Weather in Rome?"}]}`},
		{"/v1/messages", "messages_one_tool.json",
			`{"model":"m","max_tokens":10,"system":"You are a mail assistant.","messages":[{"role":"user","content":[{"type":"text","text":"Weather in Paris?"}]}]}`,
			`{"model":"m","max_tokens":10,"system":"You are a mail assistant.","messages":[{"role":"user","content":[{"type":"text","text":"Weather in Paris?"}]},{"role":"assistant","content":"Sunny."},{"role":"user","content":"Mail it to Bob."}]}`,
			`{"model":"m","max_tokens":10,"system":"You are another assistant.","messages":[{"role":"user","content":[{"type":"text","text":"Weather in Paris?"}]}]}`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			ck, srv := convRig(t, tc.fixture, "application/json")
			if code, body := convPost(t, srv, tc.path, "", tc.first); code != 200 {
				t.Fatalf("first turn: %d %s", code, body)
			}
			s1 := one(t, ck)
			if !strings.HasPrefix(s1, conversationSessionPrefix) {
				t.Fatalf("session %q, want a conversation's", s1)
			}
			convPost(t, srv, tc.path, "", tc.later)
			if s := one(t, ck); s != s1 {
				t.Errorf("a later turn in session %q, the first in %q", s, s1)
			}
			convPost(t, srv, tc.path, "", tc.other)
			if s := one(t, ck); s == s1 {
				t.Errorf("another conversation shares session %q", s)
			}
			convPost(t, srv, tc.path, "mcp-7", tc.later)
			if s := one(t, ck); s != "mcp-7" {
				t.Errorf("with the header: session %q", s)
			}
		})
	}
}

// A Responses conversation continued with previous_response_id is decided in the session its
// previous response was served in — streamed or not — and a response the gateway does not know
// leaves the call in the agent's default session.
func TestResponsesContinuedInTheSessionOfThePreviousResponse(t *testing.T) {
	for _, tc := range []struct{ name, fixture, contentType, stream string }{
		{"json", "responses_one_tool.json", "application/json", ""},
		{"stream", "responses_stream_two_tools.sse", "text/event-stream", `"stream":true,`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ck, srv := convRig(t, tc.fixture, tc.contentType)
			if code, body := convPost(t, srv, "/v1/responses", "", `{"model":"m",`+tc.stream+`"instructions":"You are a mail assistant.","input":"Weather in Paris?"}`); code != 200 {
				t.Fatalf("first turn: %d %s", code, body)
			}
			s1 := one(t, ck)
			if !strings.HasPrefix(s1, conversationSessionPrefix) {
				t.Fatalf("session %q, want a conversation's", s1)
			}
			// The next turn sends only what is new: its session comes from the link.
			convPost(t, srv, "/v1/responses", "", `{"model":"m",`+tc.stream+`"previous_response_id":"resp_01","input":[{"type":"function_call_output","call_id":"call_w1","output":"sunny"}]}`)
			if s := one(t, ck); s != s1 {
				t.Errorf("continued turn in session %q, the first in %q", s, s1)
			}
			convPost(t, srv, "/v1/responses", "", `{"model":"m",`+tc.stream+`"previous_response_id":"resp_unknown","input":"x"}`)
			if s := one(t, ck); s != "" {
				t.Errorf("continued from an unknown response: session %q, want the default", s)
			}
			// A response whose link cannot be recorded is withheld: its next turn could not be
			// placed.
			ck.linkErr = errors.New("store down")
			code, body := convPost(t, srv, "/v1/responses", "", `{"model":"m",`+tc.stream+`"input":"Weather?"}`)
			if !strings.Contains(body, codeSession) || (tc.stream == "" && code != http.StatusServiceUnavailable) {
				t.Errorf("link failure: %d %s", code, body)
			}
			if tc.stream != "" && strings.Contains(body, "response.completed") {
				t.Errorf("link failure: the stream completed: %s", body)
			}
		})
	}
}

// A Responses conversation the provider keeps (the conversation parameter) is one session
// whatever each turn sends; an over-long previous_response_id is refused, not looked up.
func TestResponsesConversationParameterIsTheSession(t *testing.T) {
	ck, srv := convRig(t, "responses_one_tool.json", "application/json")
	convPost(t, srv, "/v1/responses", "", `{"model":"m","conversation":"conv_abc","input":"Weather in Paris?"}`)
	s1 := one(t, ck)
	convPost(t, srv, "/v1/responses", "", `{"model":"m","conversation":{"id":"conv_abc"},"input":[{"type":"function_call_output","call_id":"call_w1","output":"sunny"}]}`)
	if s := one(t, ck); s != s1 || !strings.HasPrefix(s, conversationSessionPrefix) {
		t.Errorf("the next turn of conversation conv_abc in session %q, the first in %q", s, s1)
	}
	convPost(t, srv, "/v1/responses", "", `{"model":"m","conversation":"conv_other","input":"Weather in Paris?"}`)
	if s := one(t, ck); s == s1 {
		t.Errorf("another conversation shares session %q", s)
	}
	if code, body := convPost(t, srv, "/v1/responses", "", `{"model":"m","previous_response_id":"`+strings.Repeat("r", 300)+`","input":"x"}`); code != http.StatusBadRequest || !strings.Contains(body, "previous_response_id") {
		t.Errorf("over-long previous_response_id: %d %s", code, body)
	}
	// A session store that cannot be read refuses the call: nothing is decided on a session
	// the gateway could not read.
	ck.findErr = errors.New("store down")
	if code, body := convPost(t, srv, "/v1/responses", "", `{"model":"m","previous_response_id":"resp_01","input":"x"}`); code != http.StatusServiceUnavailable || !strings.Contains(body, codeSession) {
		t.Errorf("unreadable link: %d %s", code, body)
	}
}
