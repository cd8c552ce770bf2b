package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/store/postgres/pgtest"
	"github.com/portcullis-ai/portcullis/sdk"
	"github.com/portcullis-ai/portcullis/sdk/httpsig"
)

// Two `portcullis serve` replicas on one PostgreSQL (ledger, approvals) and one Redis
// (behaviour, nonces), set up as docs/deployment.md says: one data directory provisioned with
// shared ledger keys, copied to the second. Both decide at once; an approval given at one is
// used at the other, once; a signed request replayed at the other replica is refused; and the
// one ledger they wrote verifies, every decision in it exactly once.
func TestReplicasShareStores(t *testing.T) {
	rp := startReplicas(t)
	d1, d2, dir1, dir2, env, agentKey, approverKey, priv := rp.d1, rp.d2, rp.dir1, rp.dir2, rp.env, rp.agentKey, rp.approverKey, rp.priv
	ctx := context.Background()

	// Both replicas decide at once.
	var (
		mu  sync.Mutex
		ids []string
		wg  sync.WaitGroup
	)
	for r, d := range []*daemon{d1, d2, d1, d2, d1, d2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			agent := sdk.New(d.url, sdk.WithAPIKey(agentKey))
			for i := range 20 {
				dec, err := agent.Decide(ctx, sdk.DecideRequest{Tool: "fetch_customer_names", Params: map[string]any{"limit": r*100 + i}})
				if err != nil || !dec.Allowed() {
					t.Errorf("replica call %d/%d: %+v, %v", r, i, dec, err)
					return
				}
				mu.Lock()
				ids = append(ids, dec.DecisionID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	// Held at one replica, approved at the other, run at the first, refused a second time at the other.
	risky := sdk.DecideRequest{Tool: "fetch_customer_names", Params: map[string]any{"limit": 3, "filter": "1; DROP TABLE customers; --"}}
	held, err := sdk.New(d1.url, sdk.WithAPIKey(agentKey)).Decide(ctx, risky)
	if err != nil || !held.Pending() {
		t.Fatalf("risky call at replica 1: %+v, %v", held, err)
	}
	if code, _, stderr := cli(t, []string{"PORTCULLIS_URL=" + d2.url, "PORTCULLIS_APPROVER_KEY=" + approverKey}, "approvals", "approve", held.ApprovalID); code != 0 {
		t.Fatalf("approve at replica 2: %d %s", code, stderr)
	}
	risky.ApprovalID = held.ApprovalID
	if run, err := sdk.New(d1.url, sdk.WithAPIKey(agentKey)).Decide(ctx, risky); err != nil || !run.Allowed() {
		t.Fatalf("approved call at replica 1: %+v, %v", run, err)
	}
	if again, err := sdk.New(d2.url, sdk.WithAPIKey(agentKey)).Decide(ctx, risky); err != nil || again.Allowed() {
		t.Fatalf("second use of the grant at replica 2: %+v, %v", again, err)
	}

	// A signed request is good once, at whichever replica sees it first. Behind a load
	// balancer both replicas answer for one authority; here the Host header says which.
	signed := func() (body []byte, hdr http.Header) {
		body = []byte(`{"tool":"fetch_customer_names","params":{"limit":7}}`)
		r, _ := http.NewRequest(http.MethodPost, "http://gateway.example/v1/decide", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if err := (&httpsig.Signer{KeyID: "e2e-key", Key: priv}).Sign(r, body); err != nil {
			t.Fatal(err)
		}
		return body, r.Header
	}
	send := func(d *daemon, body []byte, hdr http.Header) (int, string, string) {
		t.Helper()
		r, _ := http.NewRequest(http.MethodPost, d.url+"/v1/decide", bytes.NewReader(body))
		r.Host = "gateway.example"
		r.Header = hdr.Clone()
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var a struct {
			Decision string `json:"decision"`
			Error    *struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &a)
		code := ""
		if a.Error != nil {
			code = a.Error.Code
		}
		return resp.StatusCode, a.Decision, code
	}
	body, hdr := signed()
	if status, dec, code := send(d1, body, hdr); status != 200 || dec != "ALLOW" {
		t.Fatalf("signed request at replica 1: %d %s %s", status, dec, code)
	}
	if status, dec, code := send(d2, body, hdr); status != 401 || dec != "DENY" || code != "signature_replayed" {
		t.Errorf("the same signed request at replica 2: %d %s %q, want 401 DENY signature_replayed", status, dec, code)
	}
	body, hdr = signed()
	if status, dec, code := send(d2, body, hdr); status != 200 || dec != "ALLOW" {
		t.Errorf("a fresh signed request at replica 2: %d %s %s", status, dec, code)
	}

	d1.stop(t)
	d2.stop(t)

	// One ledger, intact, every decision in it once; either replica's directory finds it.
	code, out, stderr := cli(t, env, "audit", "verify", "--data", dir2)
	if code != 0 || !strings.Contains(out, `"intact": true`) || !strings.Contains(out, `"unsigned_records": 0`) {
		t.Fatalf("audit verify: %d %s %s", code, out, stderr)
	}
	code, out, stderr = cli(t, env, "audit", "export", "--data", dir1)
	if code != 0 {
		t.Fatalf("audit export: %d %s", code, stderr)
	}
	count := map[string]int{}
	kinds := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Kind       string `json:"kind"`
			DecisionID string `json:"decision_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		kinds[r.Kind]++
		if r.Kind == "decision" {
			count[r.DecisionID]++
		}
	}
	for _, id := range ids {
		if count[id] != 1 {
			t.Errorf("decision %s is in the ledger %d times", id, count[id])
		}
	}
	// Besides ids: the held call, its run, its refused second use, and three signed requests
	// (the replay was refused, and recorded, like every denial).
	if kinds["startup"] != 2 || kinds["shutdown"] != 2 || kinds["decision"] != len(ids)+6 {
		t.Errorf("record kinds %v; want 2 startups, 2 shutdowns, %d decisions", kinds, len(ids)+6)
	}
}

// An outcome is bound to its decision by the decision's outcome token, which any replica
// checks: a call decided at one replica is reported at the other (no affinity), once across
// both; a forged or missing token is refused; and a decision made before a restart is reported
// after it.
func TestReplicasOutcomeAtAnyReplica(t *testing.T) {
	rp := startReplicas(t)
	ctx := context.Background()
	at1 := sdk.New(rp.d1.url, sdk.WithAPIKey(rp.agentKey))
	at2 := sdk.New(rp.d2.url, sdk.WithAPIKey(rp.agentKey))
	decide := func(c *sdk.Client, limit int) *sdk.Decision {
		t.Helper()
		d, err := c.Decide(ctx, sdk.DecideRequest{Tool: "fetch_customer_names", Params: map[string]any{"limit": limit}})
		if err != nil || !d.Allowed() || d.OutcomeToken == "" {
			t.Fatalf("decide: %+v, %v", d, err)
		}
		return d
	}
	refusedWith := func(err error, status int, code string) bool {
		var e *sdk.Error
		return errors.As(err, &e) && e.Status == status && e.Code == code
	}

	// Decided at replica 1, reported at replica 2 (another process: the token passed along).
	d := decide(at1, 1)
	res, err := at2.Outcome(ctx, sdk.OutcomeRequest{DecisionID: d.DecisionID, OutcomeToken: d.OutcomeToken, Ran: true, Success: true,
		Result: map[string]any{"names": []string{"Ada"}}})
	if err != nil || res.Action != "pass" {
		t.Fatalf("outcome at the other replica: %+v, %v", res, err)
	}
	// Once across both: replica 1, which made the decision, refuses a second report.
	_, err = at1.Outcome(ctx, sdk.OutcomeRequest{DecisionID: d.DecisionID, Ran: true, Success: true})
	if !refusedWith(err, http.StatusConflict, "outcome_already_reported") {
		t.Errorf("second report at replica 1: %v, want 409 outcome_already_reported", err)
	}
	// A forged token (another decision's, or its MAC changed) and no token at all are refused.
	d2 := decide(at2, 2)
	other := decide(at2, 3)
	body, mac, _ := strings.Cut(d2.OutcomeToken[len("pot1."):], ".")
	flipped := []byte(mac)
	flipped[0] ^= 'A' ^ 'B'
	for _, tok := range []string{other.OutcomeToken, "pot1." + body + "." + string(flipped), "none"} {
		if tok == "none" {
			tok = ""
		}
		raw, _ := json.Marshal(map[string]any{"decision_id": d2.DecisionID, "outcome_token": tok, "ran": true})
		req, _ := http.NewRequest(http.MethodPost, rp.d1.url+"/v1/outcome", bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+rp.agentKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(answer), `"outcome_token_invalid"`) {
			t.Errorf("token %q: %d %s, want 403 outcome_token_invalid", tok, resp.StatusCode, answer)
		}
	}
	// None of them spent d2's outcome; the SDK that made the decision reports it without being
	// handed the token.
	if res, err := at2.Outcome(ctx, sdk.OutcomeRequest{DecisionID: d2.DecisionID, Ran: true, Success: true}); err != nil || res.Action != "pass" {
		t.Fatalf("genuine report after the forgeries: %+v, %v", res, err)
	}

	// Decided before a restart, reported after it; reported once, still, after another.
	before := decide(at1, 4)
	rp.d1.stop(t)
	d1 := startServeEnv(t, rp.dir1, rp.env)
	after := sdk.New(d1.url, sdk.WithAPIKey(rp.agentKey))
	o := sdk.OutcomeRequest{DecisionID: before.DecisionID, OutcomeToken: before.OutcomeToken, Ran: true, Success: true}
	if res, err := after.Outcome(ctx, o); err != nil || res.Action != "pass" {
		t.Fatalf("outcome after a restart: %+v, %v", res, err)
	}
	if _, err := at2.Outcome(ctx, o); !refusedWith(err, http.StatusConflict, "outcome_already_reported") {
		t.Errorf("second report after the restart, at replica 2: %v", err)
	}
	d1.stop(t)
	rp.d2.stop(t)
}

// replicas are two `portcullis serve` on one PostgreSQL and one Redis, provisioned as
// docs/deployment.md says: one data directory with shared ledger keys, copied to the second.
type replicas struct {
	d1, d2                *daemon
	dir1, dir2            string
	env                   []string
	agentKey, approverKey string
	priv                  ed25519.PrivateKey // the demo agent's request-signing key (e2e-key)
	dsn, schema, prefix   string             // where they share PostgreSQL and Redis
}

func startReplicas(t *testing.T, setup ...func(dir string)) *replicas {
	t.Helper()
	dsn, schema := pgtest.Schema(t)
	raddr := os.Getenv("PORTCULLIS_TEST_REDIS")
	if raddr == "" {
		t.Skip("PORTCULLIS_TEST_REDIS is not set: no Redis to run replicas on (e.g. PORTCULLIS_TEST_REDIS=127.0.0.1:6379)")
	}
	prefix := "portcullis-e2e:" + schema + ":"
	t.Cleanup(func() {
		rc := goredis.NewClient(&goredis.Options{Addr: raddr})
		defer rc.Close()
		if keys, err := rc.Keys(context.Background(), prefix+"*").Result(); err == nil && len(keys) > 0 {
			rc.Del(context.Background(), keys...)
		}
	})
	env := []string{"PCL_E2E_POSTGRES=" + dsn, "PCL_E2E_REDIS=redis://" + raddr + "/0"}

	dir1, agentKey, approverKey := initData(t)
	priv, _, pub, err := httpsig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir1, app.ConfigFile)
	cfg, _ := os.ReadFile(cfgPath)
	cfg = bytes.Replace(cfg, []byte("      roles: [reporting]\n"),
		[]byte("      roles: [reporting]\n      signing_keys:\n        - id: e2e-key\n          public_key: "+pub+"\n"), 1)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	appendConfig(t, dir1, fmt.Sprintf(`store:
  ledger: postgres
  approvals: postgres
  behavior: redis
  nonces: redis
  postgres:
    dsn_env: PCL_E2E_POSTGRES
    schema: %s
  redis:
    url_env: PCL_E2E_REDIS
    prefix: %q
`, schema, prefix))
	if code, _, stderr := cli(t, nil, "audit", "keygen", "--data", dir1); code != 0 {
		t.Fatalf("audit keygen: %s", stderr)
	}
	for _, f := range setup {
		f(dir1)
	}
	dir2 := t.TempDir()
	copyDir(t, dir1, dir2)

	return &replicas{d1: startServeEnv(t, dir1, env), d2: startServeEnv(t, dir2, env), dir1: dir1, dir2: dir2, env: env,
		agentKey: agentKey, approverKey: approverKey, priv: priv, dsn: dsn, schema: schema, prefix: prefix}
}

// copyDir copies the files of a provisioned data directory.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}
