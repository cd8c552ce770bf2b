package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/sdk/httpsig"
)

// mcpSigned is serve with the Streamable HTTP gateway in front of one remote upstream whose echo
// tool counts its calls, and an agent that signs its requests (RFC 9421, Ed25519).
type mcpSigned struct {
	app    *App
	url    string // the gateway's /mcp
	calls  *atomic.Int32
	signer *httpsig.Signer
}

func newMCPSigned(t *testing.T) *mcpSigned { return newMCPSignedWith(t, nil) }

// newMCPSignedWith is newMCPSigned with change applied to the configuration before serve opens.
func newMCPSignedWith(t *testing.T, change func(*config.Config)) *mcpSigned {
	t.Helper()
	calls := &atomic.Int32{}
	up := sdk.NewServer(&sdk.Implementation{Name: "up", Version: "1"}, nil)
	type in struct {
		Text string `json:"text"`
	}
	sdk.AddTool(up, &sdk.Tool{Name: "echo", Description: "Echoes text."}, func(_ context.Context, _ *sdk.CallToolRequest, a in) (*sdk.CallToolResult, any, error) {
		calls.Add(1)
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: a.Text}}}, nil, nil
	})
	// log logs its text at info, and a secret at warning, while it runs.
	sdk.AddTool(up, &sdk.Tool{Name: "log", Description: "Logs text."}, logTool)
	upSrv := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return up }, nil))
	t.Cleanup(upSrv.Close)

	dir, cfgPath, _, cfg := initDefault(t)
	pol := "agent_id: report-generator-v1\ndefault_action: DENY\nrules:\n  - name: echo\n    tool: up__(echo|log)\n    action: ALLOW\n"
	if err := os.WriteFile(filepath.Join(dir, "policies", "report-generator-v1.yaml"), []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	priv, _, pub, err := httpsig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Identity.Agents[0].SigningKeys = []identity.SigningKeyConfig{{ID: "agent-key-1", PublicKey: pub}}
	cfg.MCP.Upstreams = []config.MCPUpstream{{Name: "up", URL: upSrv.URL}}
	if change != nil {
		change(cfg)
	}
	a, url := serveOpened(t, cfg, cfgPath)
	return &mcpSigned{app: a, url: url + "/mcp", calls: calls, signer: &httpsig.Signer{KeyID: "agent-key-1", Key: priv}}
}

// serveOpened opens the app of cfg and serves its handler until the test ends; it returns the
// app and the server's URL.
func serveOpened(t *testing.T, cfg *config.Config, cfgPath string) (*App, string) {
	t.Helper()
	a, err := Open(context.Background(), cfg, cfgPath, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		gw.Close()
		a.Close(context.Background())
	})
	return a, gw.URL
}

// connect opens an MCP session whose every HTTP request the signer signs with a fresh nonce.
func (m *mcpSigned) connect(t *testing.T, s *httpsig.Signer) *sdk.ClientSession {
	return m.connectWith(t, s, nil)
}

func (m *mcpSigned) connectWith(t *testing.T, s *httpsig.Signer, o *sdk.ClientOptions) *sdk.ClientSession {
	t.Helper()
	client := sdk.NewClient(&sdk.Implementation{Name: "signed-agent", Version: "1"}, o)
	cs, err := client.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: m.url,
		HTTPClient: &http.Client{Transport: &httpsig.Transport{Signer: s}}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect with a signing client: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// signedCall is a tools/call POST on session cs, signed by s, with the body sent replaced by
// sendBody when it is not empty (a body changed after signing).
func (m *mcpSigned) signedCall(t *testing.T, cs *sdk.ClientSession, s *httpsig.Signer, body, sendBody string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, m.url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", cs.ID())
	req.Header.Set("Mcp-Protocol-Version", cs.InitializeResult().ProtocolVersion)
	if err := s.Sign(req, []byte(body)); err != nil {
		t.Fatal(err)
	}
	if sendBody != "" {
		req.Body = io.NopCloser(strings.NewReader(sendBody))
		req.ContentLength = int64(len(sendBody))
	}
	return req
}

// get is the body of an unauthenticated GET of path on the gateway.
func (m *mcpSigned) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(m.url, "/mcp") + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func send(t *testing.T, req *http.Request, body string) (int, string) {
	t.Helper()
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(strings.NewReader(body))
	r.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Signed requests on /mcp: a signed session and tools/call work; a body changed after signing,
// a replayed request and a stale signature are refused before the SDK sees them — a 401 naming
// the reason, nothing forwarded — and the refusals are on the record.
func TestMCPSignedRequests(t *testing.T) {
	m := newMCPSigned(t)
	cs := m.connect(t, m.signer)
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "up__echo", Arguments: map[string]any{"text": "hello"}})
	if err != nil || res.IsError {
		t.Fatalf("signed tools/call: %v %+v", err, res)
	}
	if got := res.Content[0].(*sdk.TextContent).Text; got != "hello" {
		t.Fatalf("signed tools/call answered %q, want hello", got)
	}
	if n := m.calls.Load(); n != 1 {
		t.Fatalf("upstream ran %d times after one signed call, want 1", n)
	}

	const body = `{"jsonrpc":"2.0","id":101,"method":"tools/call","params":{"name":"up__echo","arguments":{"text":"once"}}}`
	const tampered = `{"jsonrpc":"2.0","id":101,"method":"tools/call","params":{"name":"up__echo","arguments":{"text":"twice"}}}`
	stale := &httpsig.Signer{KeyID: m.signer.KeyID, Key: m.signer.Key, Now: func() time.Time { return time.Now().Add(-time.Hour) }}

	// The raw request path works when signed correctly (so the refusals below are the
	// signature's doing, not the request's shape).
	ok := m.signedCall(t, cs, m.signer, body, "")
	if code, out := send(t, ok, body); code != http.StatusOK || !strings.Contains(out, "once") {
		t.Fatalf("signed raw tools/call: %d %s", code, out)
	}
	if n := m.calls.Load(); n != 2 {
		t.Fatalf("upstream ran %d times, want 2", n)
	}

	for _, tc := range []struct {
		name, body, code string
		req              *http.Request
	}{
		{"replayed nonce", body, identity.Code(identity.ErrReplay), ok},
		{"tampered body", tampered, identity.Code(identity.ErrInvalid), m.signedCall(t, cs, m.signer, body, tampered)},
		{"stale signature", body, identity.Code(identity.ErrStale), m.signedCall(t, cs, stale, body, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := send(t, tc.req, tc.body)
			if status != http.StatusUnauthorized || !strings.Contains(out, "unauthenticated: "+tc.code) {
				t.Errorf("got %d %q, want 401 naming %s", status, out, tc.code)
			}
			if n := m.calls.Load(); n != 2 {
				t.Errorf("upstream ran %d times, want still 2: nothing may be forwarded", n)
			}
		})
	}

	// Each refusal is a recorded denial.
	var denied []string
	if err := m.app.ledgerStore.Scan(context.Background(), 0, func(e ledger.Entry) error {
		if r, err := ledger.ParseRecord(e.Data); err == nil && r.Kind == ledger.KindDecision && r.Source == "mcp" && r.Decision == "deny" {
			denied = append(denied, r.Reason)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Exactly these three: the signed session's own requests (initialize, notifications,
	// tools/call) were never refused.
	want := []string{identity.Code(identity.ErrReplay), identity.Code(identity.ErrInvalid), identity.Code(identity.ErrStale)}
	if len(denied) != len(want) {
		t.Fatalf("recorded mcp denials %q, want one each for %q", denied, want)
	}
	for i, code := range want {
		if !strings.HasPrefix(denied[i], code+":") {
			t.Errorf("denial %d is %q, want it to start with %s", i, denied[i], code)
		}
	}
}

// TestHTTPUpstreamResumesClosedStream: a remote upstream may close a call's event stream and
// deliver the result on a resumed one (SEP-1699). The gateway's transport to it resumes instead
// of failing the call (and with it the upstream session).
func TestHTTPUpstreamResumesClosedStream(t *testing.T) {
	srv := sdk.NewServer(&sdk.Implementation{Name: "resumable", Version: "1"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "reconnect"}, func(_ context.Context, r *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, any, error) {
		// Close the stream before answering: the answer goes to the event store and reaches the
		// client only if it reconnects with Last-Event-ID.
		r.Extra.CloseSSEStream(sdk.CloseSSEStreamArgs{RetryAfter: time.Millisecond})
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "after the reconnection"}}}, nil, nil
	})
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv },
		&sdk.StreamableHTTPOptions{EventStore: sdk.NewMemoryEventStore(nil)})
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close) // after the session's close (cleanups run last first)

	ctx, cs := connectRemoteUpstream(t, hs.URL)
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "reconnect", Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("call over a closed and resumed stream: %v", err)
	}
	if res.IsError || len(res.Content) != 1 || res.Content[0].(*sdk.TextContent).Text != "after the reconnection" {
		t.Errorf("result: %+v", res)
	}
}

// TestMCPIdleSessionClosed: an HTTP session that sends nothing for mcp.session_idle_timeout is
// closed (a client that never ends its sessions cannot pile them up); its ID is then unknown,
// and a new session works.
func TestMCPIdleSessionClosed(t *testing.T) {
	m := newMCPSignedWith(t, func(c *config.Config) { c.MCP.SessionIdleTimeout = time.Second })
	signer := m.signer
	cs := m.connect(t, signer)
	ctx := context.Background()
	args := map[string]any{"text": "hi"}
	if r, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "up__echo", Arguments: args}); err != nil || r.IsError {
		t.Fatalf("call on a fresh session: %v %+v", err, r)
	}
	time.Sleep(2500 * time.Millisecond)
	if _, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "up__echo", Arguments: args}); err == nil {
		t.Error("a session idle for longer than the timeout still answered")
	}
	cs2 := m.connect(t, signer)
	if r, err := cs2.CallTool(ctx, &sdk.CallToolParams{Name: "up__echo", Arguments: args}); err != nil || r.IsError {
		t.Fatalf("call on a new session: %v %+v", err, r)
	}
	if got := m.calls.Load(); got != 2 {
		t.Errorf("the upstream ran %d calls, want 2", got)
	}
}

// TestSessionOwnersForgetEndedSessions: opening a session forgets the owners of the sessions the
// SDK no longer holds, and keeps the live ones'.
func TestSessionOwnersForgetEndedSessions(t *testing.T) {
	live := []string{"a"}
	o := &sessionOwners{owners: map[string]string{}, live: func(yield func(string) bool) {
		for _, id := range live {
			if !yield(id) {
				return
			}
		}
	}}
	o.add("a", "agent-1")
	o.add("b", "agent-2")
	live = []string{"b", "c"} // a ended without a DELETE; c is opening
	o.add("c", "agent-1")
	o.add("c", "agent-2") // the SDK names c again on its next answer: the owner stays
	if _, ok := o.owner("a"); ok {
		t.Error("the owner of an ended session is still held")
	}
	for id, want := range map[string]string{"b": "agent-2", "c": "agent-1"} {
		if got, ok := o.owner(id); !ok || got != want {
			t.Errorf("owner of %s = %q, %v; want %q", id, got, ok, want)
		}
	}
}

// TestHTTPUpstreamReusesConnections: concurrent calls to a remote upstream reuse the gateway's
// connections to it instead of opening (and dropping) one per call beyond two, net/http's
// default of idle connections per host.
func TestHTTPUpstreamReusesConnections(t *testing.T) {
	srv := sdk.NewServer(&sdk.Implementation{Name: "remote", Version: "1"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "echo"}, func(_ context.Context, _ *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, any, error) {
		time.Sleep(2 * time.Millisecond) // keep the calls of a round in flight together
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "ok"}}}, nil, nil
	})
	var opened atomic.Int32
	hs := httptest.NewUnstartedServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil))
	hs.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	hs.Start()
	t.Cleanup(hs.Close)

	ctx, cs := connectRemoteUpstream(t, hs.URL)
	const concurrent, rounds = 16, 10
	for range rounds {
		var wg sync.WaitGroup
		for range concurrent {
			wg.Go(func() {
				if r, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{}}); err != nil || r.IsError {
					t.Errorf("call: %v %+v", err, r)
				}
			})
		}
		wg.Wait()
	}
	// At most one connection per call in flight (plus the session's own streams), however
	// many rounds: the default transport opened ≈ (concurrent-2) per round.
	if n := opened.Load(); n > concurrent+4 {
		t.Errorf("%d connections opened for %d rounds of %d concurrent calls; want them reused", n, rounds, concurrent)
	}
}

// connectRemoteUpstream connects to url the way serve connects to a remote upstream (the
// transport MCPUpstreams makes), for 30 s at most.
func connectRemoteUpstream(t *testing.T, url string) (context.Context, *sdk.ClientSession) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	ups, err := MCPUpstreams([]config.MCPUpstream{{Name: "r", URL: url}}, os.Stderr, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := ups[0].NewTransport()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "gw", Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return ctx, cs
}

// TestMCPHTTPRefusesRepeatedKeys: over Streamable HTTP, tools/call arguments that repeat a key
// (exactly or up to case) are answered with JSON-RPC invalid params naming the key, never
// forwarded, and the attempt is a recorded denial with the code duplicate_key.
func TestMCPHTTPRefusesRepeatedKeys(t *testing.T) {
	m := newMCPSigned(t)
	cs := m.connect(t, m.signer)
	for i, args := range []string{`{"text":"evil","text":"safe"}`, `{"text":"evil","Text":"safe"}`, `{"text":"x","o":{"a":1,"a":2}}`} {
		body := `{"jsonrpc":"2.0","id":` + strconv.Itoa(200+i) + `,"method":"tools/call","params":{"name":"up__echo","arguments":` + args + `}}`
		status, out := send(t, m.signedCall(t, cs, m.signer, body, ""), body)
		if status != http.StatusOK || !strings.Contains(out, `"code":-32602`) || !strings.Contains(out, "duplicate key") {
			t.Errorf("%s: %d %s; want a JSON-RPC invalid params error naming the duplicate key", args, status, out)
		}
	}
	if n := m.calls.Load(); n != 0 {
		t.Errorf("upstream ran %d times; want 0: nothing may be forwarded", n)
	}
	var codes []string
	if err := m.app.ledgerStore.Scan(context.Background(), 0, func(e ledger.Entry) error {
		if r, err := ledger.ParseRecord(e.Data); err == nil && r.Kind == ledger.KindDecision && r.Source == "mcp" && r.Decision == "deny" {
			codes = append(codes, r.Reason)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(codes) != 3 {
		t.Fatalf("recorded denials %q, want 3", codes)
	}
	for _, c := range codes {
		if !strings.HasPrefix(c, "duplicate_key:") {
			t.Errorf("denial %q, want duplicate_key", c)
		}
	}
}
