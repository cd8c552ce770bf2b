package llm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// Credentials of the test: agents hold only agentKey; the gateway holds only providerKey.
const (
	agentKey    = "pc-agent-key-7f3a"
	providerKey = "sk-provider-key-91c2"
)

// fakeChecker decides by tool name, as a policy would, and by content markers, as an
// inspector would. It records what it was asked.
type fakeChecker struct {
	mu       sync.Mutex
	verdicts map[string]Verdict // tool name → verdict; absent tools are denied
	fail     map[string]bool    // tool names whose check returns an error
	hidden   map[string]bool    // tools AllowedTools removes
	toolsErr error
	calls    []ToolCall
	contents []Content
}

func newChecker() *fakeChecker {
	return &fakeChecker{
		verdicts: map[string]Verdict{
			"get_weather": {Action: Allow, DecisionID: "dec-weather"},
			"send_email":  {Action: Allow, DecisionID: "dec-email"},
		},
		fail:   map[string]bool{},
		hidden: map[string]bool{"drop_database": true},
	}
}

func (f *fakeChecker) set(name string, v Verdict) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verdicts[name] = v
}

func (f *fakeChecker) Authenticate(r *http.Request) (Caller, error) {
	if r.Header.Get("Authorization") == "Bearer "+agentKey || r.Header.Get("X-Api-Key") == agentKey {
		return Caller{AgentID: "agent-1"}, nil
	}
	return Caller{}, errors.New("unknown credential")
}

func (f *fakeChecker) AllowedTools(_ context.Context, _ Caller, names []string) ([]string, error) {
	if f.toolsErr != nil {
		return nil, f.toolsErr
	}
	var out []string
	for _, n := range names {
		if !f.hidden[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

func (f *fakeChecker) CheckToolCall(_ context.Context, c Caller, call ToolCall) (Verdict, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if c.AgentID != "agent-1" {
		return Verdict{}, errors.New("unauthenticated caller reached the check")
	}
	if f.fail[call.Name] {
		return Verdict{Action: Allow}, errors.New("policy store unavailable") // the Allow must be ignored
	}
	v, ok := f.verdicts[call.Name]
	if !ok {
		return Verdict{Action: Deny, DecisionID: "dec-default"}, nil
	}
	return v, nil
}

func (f *fakeChecker) InspectContent(_ context.Context, _ Caller, c Content) (ContentVerdict, error) {
	f.mu.Lock()
	f.contents = append(f.contents, c)
	f.mu.Unlock()
	switch lower := strings.ToLower(c.Text); {
	case strings.Contains(lower, "inspect-error"):
		return ContentVerdict{Action: Pass}, errors.New("detector crashed")
	case strings.Contains(lower, "ignore all previous instructions"):
		return ContentVerdict{Action: Block, DecisionID: "dec-injection", Message: "prompt injection in content"}, nil
	case strings.Contains(c.Text, "sk-live-"):
		return ContentVerdict{Action: Redact, Text: strings.ReplaceAll(c.Text, "sk-live-abcdef123456", "[REDACTED:api_key]"), DecisionID: "dec-redact"}, nil
	}
	return ContentVerdict{Action: Pass}, nil
}

var _ Checker = (*fakeChecker)(nil)

// fakeUpstream replays a fixture and asserts it sees only the provider's key.
type fakeUpstream struct {
	t           testing.TB
	srv         *httptest.Server
	status      int
	contentType string
	body        []byte

	mu       sync.Mutex
	requests [][]byte
	paths    []string
}

func (u *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.requests = append(u.requests, body)
	u.paths = append(u.paths, r.URL.Path)
	u.mu.Unlock()
	for k, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, agentKey) {
				u.t.Errorf("upstream saw the agent credential in header %s", k)
			}
		}
	}
	if strings.Contains(string(body), agentKey) {
		u.t.Errorf("upstream saw the agent credential in the body")
	}
	if strings.HasSuffix(r.URL.Path, "/messages") {
		if got := r.Header.Get("X-Api-Key"); got != providerKey {
			u.t.Errorf("upstream x-api-key = %q, want the provider key", got)
		}
		if r.Header.Get("Authorization") != "" {
			u.t.Errorf("upstream saw an Authorization header on the Anthropic path")
		}
		if r.Header.Get("Anthropic-Version") == "" {
			u.t.Errorf("upstream request lacks anthropic-version")
		}
	} else if got := r.Header.Get("Authorization"); got != "Bearer "+providerKey {
		u.t.Errorf("upstream Authorization = %q, want the provider key", got)
	}
	w.Header().Set("Content-Type", u.contentType)
	w.Header().Set("X-Request-Id", "req_upstream_1")
	w.WriteHeader(u.status)
	if u.contentType == "text/event-stream" {
		// Replay event by event, flushing, like a provider.
		for ev := range strings.SplitAfterSeq(string(u.body), "\n\n") {
			_, _ = io.WriteString(w, ev)
			http.NewResponseController(w).Flush()
		}
		return
	}
	_, _ = w.Write(u.body)
}

func (u *fakeUpstream) lastRequest() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.requests) == 0 {
		return ""
	}
	return string(u.requests[len(u.requests)-1])
}

func (u *fakeUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.requests)
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rig is a gateway (httptest) in front of a fake upstream (httptest).
type rig struct {
	checker  *fakeChecker
	upstream *fakeUpstream
	gateway  *httptest.Server
	gw       *Gateway
}

func newRig(t testing.TB, body []byte, status int, contentType string) *rig {
	t.Helper()
	up := &fakeUpstream{t: t, status: status, contentType: contentType, body: body}
	up.srv = httptest.NewServer(up)
	t.Cleanup(up.srv.Close)
	ck := newChecker()
	base := up.srv.URL + "/v1"
	gw, err := New(Config{
		Upstreams: map[Format]Upstream{
			ChatCompletions: {BaseURL: base, APIKey: providerKey},
			Responses:       {BaseURL: base, APIKey: providerKey},
			Messages:        {BaseURL: base, APIKey: providerKey},
		},
		Timeout:           10 * time.Second,
		StreamIdleTimeout: 10 * time.Second,
	}, ck)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return &rig{checker: ck, upstream: up, gateway: srv, gw: gw}
}

func jsonRig(t testing.TB, name string) *rig {
	return newRig(t, fixture(t, name), http.StatusOK, "application/json")
}

func sseRig(t testing.TB, name string) *rig {
	return newRig(t, fixture(t, name), http.StatusOK, "text/event-stream")
}

// openaiClient is the official OpenAI client pointed at the gateway with the agent's key.
func (r *rig) openaiClient(opts ...option.RequestOption) *openai.Client {
	c := openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(r.gateway.URL + "/v1/"), option.WithAPIKey(agentKey), option.WithMaxRetries(0),
	}, opts...)...)
	return &c
}

// anthropicClient is the official Anthropic client pointed at the gateway with the agent's key.
func (r *rig) anthropicClient(opts ...aoption.RequestOption) *anthropic.Client {
	c := anthropic.NewClient(append([]aoption.RequestOption{
		aoption.WithBaseURL(r.gateway.URL), aoption.WithAPIKey(agentKey), aoption.WithMaxRetries(0),
	}, opts...)...)
	return &c
}

// inProcess is an http.RoundTripper that serves requests with a handler in the calling
// goroutine's bubble (no network), so timeouts can be tested with testing/synctest. The
// response body is a pipe the handler writes to as it goes, so streams stay streams.
type inProcess struct{ h http.Handler }

func (p inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	pr, pw := io.Pipe()
	rw := &pipeWriter{header: http.Header{}, pw: pw, ready: make(chan struct{})}
	go func() {
		p.h.ServeHTTP(rw, req)
		rw.WriteHeader(http.StatusOK)
		pw.Close()
	}()
	select {
	case <-rw.ready:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	return &http.Response{StatusCode: rw.status, Header: rw.header, Body: pr, Request: req,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}, nil
}

type pipeWriter struct {
	header http.Header
	pw     *io.PipeWriter
	status int
	once   sync.Once
	ready  chan struct{}
}

func (w *pipeWriter) Header() http.Header { return w.header }
func (w *pipeWriter) WriteHeader(code int) {
	w.once.Do(func() {
		w.status = code
		w.header = w.header.Clone()
		close(w.ready)
	})
}
func (w *pipeWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pw.Write(b)
}
func (w *pipeWriter) Flush() {}

func optionAPIKey(k string) option.RequestOption { return option.WithAPIKey(k) }
