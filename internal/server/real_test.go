package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
)

const realPolicy = `
agent_id: payer
default_action: DENY
rules:
  - name: small_payments
    tool: pay
    action: ALLOW
    conditions:
      - parameter: amount
        max_value: 9007199254740992
  - name: exact_code
    tool: code
    action: ALLOW
    conditions:
      - parameter: code
        one_of: [9007199254740992, 1]
  - name: anything_goes
    tool: ping
    action: ALLOW
`

type staticPolicies struct{ set *policy.Set }

func (s staticPolicies) Current() *policy.Set { return s.set }

// realAPI is the HTTP API over the real guard: identity with an API key for agent "payer", the
// inspection engine, the policy above, an in-memory approval queue and a ledger on the in-memory
// store.
type realAPI struct {
	srv   *httptest.Server
	key   string
	store *memory.Store
}

func newRealAPI(t *testing.T, limits Limits) *realAPI {
	t.Helper()
	ctx := context.Background()
	f, err := policy.Parse("test.yaml", []byte(realPolicy))
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Compile(f)
	if err != nil {
		t.Fatal(err)
	}
	ks := identity.NewMemoryKeyStore()
	key, _, err := identity.CreateAPIKey(ctx, ks, "payer", "test", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := identity.New(identity.Config{Agents: []identity.AgentConfig{{ID: "payer"}}}, identity.Options{Keys: ks})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ledger.GenerateKeys(t.TempDir(), "portcullis.test/ledger")
	if err != nil {
		t.Fatal(err)
	}
	vs, _, err := keys.Verifiers()
	if err != nil {
		t.Fatal(err)
	}
	store := memory.New()
	led, err := ledger.Open(ctx, ledger.Options{Store: store, Signer: keys.Signer, Verifiers: vs, HashKey: keys.HashKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = led.Close(context.Background()) })
	appr, err := approval.New(approval.NewMemory(), guard.ApprovalRecorder(led))
	if err != nil {
		t.Fatal(err)
	}
	g, err := guard.New(guard.Options{Auth: ver, Inspector: inspect.New(inspect.Config{}), Policies: staticPolicies{set},
		Approvals: appr, Ledger: led})
	if err != nil {
		t.Fatal(err)
	}
	if limits == (Limits{}) {
		limits = Limits{MaxBodyBytes: 1 << 20, MaxDepth: 64, MaxParams: 100, DecisionTimeout: 5 * time.Second}
	}
	s := New(Options{Decider: g, Limits: limits})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &realAPI{srv: srv, key: key, store: store}
}

type apiAnswer struct {
	status int
	body   map[string]any
}

func (a apiAnswer) code() string {
	e, _ := a.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (a *realAPI) post(t *testing.T, path, body string, header http.Header) apiAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, a.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.key)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := apiAnswer{status: resp.StatusCode}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		t.Fatalf("answer %d is not JSON: %s", resp.StatusCode, raw)
	}
	return out
}

func (a *realAPI) decide(t *testing.T, body string) apiAnswer {
	t.Helper()
	return a.post(t, "/v1/decide", body, nil)
}

// TestDecideComparesNumbersExactly: through /v1/decide, a limit of 2^53 refuses what the tool
// would read as more than 2^53, however it is written.
func TestDecideComparesNumbersExactly(t *testing.T) {
	api := newRealAPI(t, Limits{})
	tests := []struct {
		tool, params string
		want         string
	}{
		{"pay", `{"amount": 9007199254740992}`, "ALLOW"},
		{"pay", `{"amount": 9007199254740993}`, "DENY"},
		{"pay", `{"amount": 9007199254740992.9}`, "DENY"},
		{"pay", `{"amount": 9.007199254740993e15}`, "DENY"},
		{"pay", `{"amount": 1e400}`, "DENY"},
		{"pay", `{"amount": -1e400}`, "ALLOW"},
		{"code", `{"code": 9007199254740993}`, "DENY"},
		{"code", `{"code": 9007199254740992}`, "ALLOW"},
		{"code", `{"code": 1.0}`, "ALLOW"},
	}
	for _, tc := range tests {
		got := api.decide(t, `{"tool":"`+tc.tool+`","params":`+tc.params+`}`)
		if got.status != http.StatusOK || got.body["decision"] != tc.want {
			t.Errorf("%s %s: %d %v, want 200 %s", tc.tool, tc.params, got.status, got.body, tc.want)
		}
	}
}
