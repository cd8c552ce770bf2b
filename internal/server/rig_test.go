package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/ledger/ledgertest"
	"github.com/portcullis-ai/portcullis/internal/policy"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
	"github.com/portcullis-ai/portcullis/sdk/httpsig"
)

// rigPolicy is the same for both agents: reads run, wires wait for a human, deletes never run.
const rigPolicy = `
agent_id: %s
default_action: DENY
rules:
  - name: read
    tool: fetch_customer_names
    action: ALLOW
  - name: text
    tool: send_text
    action: ALLOW
  - name: wire
    tool: wire_money
    action: CONSTRAIN
    enforcement: require_human_approval
  - name: no_deletes
    tool: delete_file
    action: DENY
`

// rig is the HTTP API over a real guard: identity (API keys and a signing key), inspection, the
// policy above, an in-memory approval queue and a ledger on the in-memory store.
type rig struct {
	srv         *httptest.Server
	server      *Server
	victimKey   string // API key of "victim"
	otherKey    string // API key of "other"
	victimKeyID string
	signKey     ed25519.PrivateKey // victim's request-signing key, id "victim-sig"
	store       *memory.Store
	appr        *approval.Engine
}

func newRig(t *testing.T, limits Limits) *rig {
	t.Helper()
	return newRigWith(t, limits, nil)
}

// newRigWith is newRig with the ledger's store wrapped (a slow disk, say).
func newRigWith(t *testing.T, limits Limits, wrapStore func(ledger.Store) ledger.Store) *rig {
	t.Helper()
	ctx := context.Background()
	var files []*policy.File
	for _, agent := range []string{"victim", "other"} {
		f, err := policy.Parse(agent+".yaml", fmt.Appendf(nil, rigPolicy, agent))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	set, err := policy.Compile(files...)
	if err != nil {
		t.Fatal(err)
	}
	ks := identity.NewMemoryKeyStore()
	victimKey, victimRec, err := identity.CreateAPIKey(ctx, ks, "victim", "test", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _, err := identity.CreateAPIKey(ctx, ks, "other", "test", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := identity.New(identity.Config{Agents: []identity.AgentConfig{
		{ID: "victim", SigningKeys: []identity.SigningKeyConfig{{ID: "victim-sig", PublicKey: base64.StdEncoding.EncodeToString(pub)}}},
		{ID: "other"},
	}}, identity.Options{Keys: ks, Nonces: identity.NewMemoryNonceStore(nil)})
	if err != nil {
		t.Fatal(err)
	}
	g, appr, store := realPipelineWith(t, ver, set, wrapStore)
	if limits.MaxBodyBytes == 0 {
		limits.MaxBodyBytes = 1 << 20
	}
	if limits.MaxDepth == 0 {
		limits.MaxDepth = 64
	}
	if limits.MaxParams == 0 {
		limits.MaxParams = 1000
	}
	s := New(Options{Decider: g, Approvals: appr, Limits: limits})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &rig{srv: srv, server: s, victimKey: victimKey, otherKey: otherKey, victimKeyID: victimRec.ID, signKey: priv, store: store, appr: appr}
}

// realPipeline is the real guard over ver and set, with the inspection engine, an in-memory
// approval queue and a signed ledger on the in-memory store — what serve wires, minus SQLite.
func realPipeline(t *testing.T, ver *identity.Verifier, set *policy.Set) (*guard.Guard, *approval.Engine, *memory.Store) {
	t.Helper()
	return realPipelineWith(t, ver, set, nil)
}

// realPipelineWith is realPipeline with the ledger's store wrapped (nil: not wrapped); the
// returned store is the in-memory one underneath.
func realPipelineWith(t *testing.T, ver *identity.Verifier, set *policy.Set, wrapStore func(ledger.Store) ledger.Store) (*guard.Guard, *approval.Engine, *memory.Store) {
	t.Helper()
	store := memory.New()
	var lst ledger.Store = store
	if wrapStore != nil {
		lst = wrapStore(store)
	}
	led := ledgertest.Open(t, lst, nil, ledger.Options{})
	appr, err := approval.New(approval.NewMemory(), guard.ApprovalRecorder(led))
	if err != nil {
		t.Fatal(err)
	}
	g, err := guard.New(guard.Options{Auth: ver, Inspector: inspect.New(inspect.Config{}), Policies: staticPolicies{set},
		Approvals: appr, Ledger: led})
	if err != nil {
		t.Fatal(err)
	}
	return g, appr, store
}

type staticPolicies struct{ set *policy.Set }

func (s staticPolicies) Current() *policy.Set { return s.set }

// answer is a decoded response of the API.
type answer struct {
	Status     int
	Decision   string `json:"decision"`
	DecisionID string `json:"decision_id"`
	ApprovalID string `json:"approval_id"`
	Error      *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (a answer) code() string {
	if a.Error == nil {
		return ""
	}
	return a.Error.Code
}

// post sends body to path with the header "Authorization: Bearer key" (none if key is empty).
func (r *rig) post(t *testing.T, client *http.Client, path, key, body string) (answer, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.srv.URL+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return r.do(client, req)
}

func (r *rig) do(client *http.Client, req *http.Request) (answer, error) {
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{Status: resp.StatusCode}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return a, err
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("answer %s: %w", b, err)
	}
	return a, nil
}

// signed returns a POST of body to path signed with the victim's signing key.
func (r *rig) signed(t *testing.T, path, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.srv.URL+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	s := &httpsig.Signer{KeyID: "victim-sig", Key: r.signKey}
	if err := s.Sign(req, []byte(body)); err != nil {
		t.Fatal(err)
	}
	return req
}

// records returns the ledger's decision records.
func (r *rig) records(t *testing.T) []*ledger.Record {
	t.Helper()
	var out []*ledger.Record
	if err := r.store.Scan(context.Background(), 0, func(e ledger.Entry) error {
		rec, err := ledger.ParseRecord(e.Data)
		if err != nil {
			return err
		}
		if rec.Kind == ledger.KindDecision {
			out = append(out, rec)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
