package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/sdk"
)

// A console session behind two `serve` replicas on one PostgreSQL and one Redis, as a person
// behind a load balancer without sticky sessions lives it: signed in at one replica, they read
// and approve (a CSRF-protected form) at the other; a replica restarted keeps them signed in;
// signed out at one, the other refuses the cookie. The store holds the token's digest, never
// the token nor the approver key. Once with the sessions where the approvals are (PostgreSQL,
// the default with shared approvals), once on Redis.
func TestConsoleSessionAcrossReplicas(t *testing.T) {
	for _, backend := range []string{"postgres", "redis"} {
		t.Run(backend, func(t *testing.T) {
			var setup []func(string)
			if backend == "redis" {
				setup = append(setup, func(dir string) {
					p := filepath.Join(dir, app.ConfigFile)
					b, _ := os.ReadFile(p)
					b = bytes.Replace(b, []byte("  nonces: redis\n"), []byte("  nonces: redis\n  console: redis\n"), 1)
					if err := os.WriteFile(p, b, 0o600); err != nil {
						t.Fatal(err)
					}
				})
			}
			rp := startReplicas(t, setup...)
			consoleAcrossReplicas(t, rp, backend)
		})
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func consoleAcrossReplicas(t *testing.T, rp *replicas, backend string) {
	ctx := context.Background()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, u, token string, form url.Values) (int, string, *http.Response) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, u, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if token != "" {
			req.AddCookie(&http.Cookie{Name: "portcullis_console", Value: token})
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp
	}

	// A call held for approval at replica 1.
	risky := sdk.DecideRequest{Tool: "fetch_customer_names", Params: map[string]any{"limit": 3, "filter": "1; DROP TABLE customers; --"}}
	held, err := sdk.New(rp.d1.url, sdk.WithAPIKey(rp.agentKey)).Decide(ctx, risky)
	if err != nil || !held.Pending() {
		t.Fatalf("risky call: %+v, %v", held, err)
	}

	// Signed in at replica 1.
	status, body, resp := do("POST", rp.d1.url+"/console/login", "", url.Values{"key": {rp.approverKey}})
	if status != http.StatusSeeOther {
		t.Fatalf("sign-in at replica 1: %d %s", status, body)
	}
	var token string
	for _, c := range resp.Cookies() {
		if c.Name == "portcullis_console" {
			token = c.Value
		}
	}
	if token == "" {
		t.Fatal("sign-in set no session cookie")
	}

	// The store keeps the token's digest and nothing that signs anyone in.
	checkAtRest(t, rp, backend, token)

	// Read and approve at replica 2, with the CSRF token replica 2's page carries.
	status, body, _ = do("GET", rp.d2.url+"/console/approvals/"+held.ApprovalID, token, nil)
	if status != http.StatusOK || !strings.Contains(body, held.ApprovalID) {
		t.Fatalf("request page at replica 2: %d %.300s", status, body)
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on the request page: %.500s", body)
	}
	csrf := m[1]
	if status, _, _ = do("POST", rp.d2.url+"/console/approvals/"+held.ApprovalID+"/approve", token, url.Values{"csrf": {"forged"}}); status != http.StatusForbidden {
		t.Fatalf("approve with a wrong CSRF token at replica 2: %d, want 403", status)
	}
	status, body, resp = do("POST", rp.d2.url+"/console/approvals/"+held.ApprovalID+"/approve", token, url.Values{"csrf": {csrf}})
	if loc := resp.Header.Get("Location"); status != http.StatusSeeOther || !strings.Contains(loc, "result=approved") {
		t.Fatalf("approve at replica 2: %d %s %.300s", status, loc, body)
	}
	risky.ApprovalID = held.ApprovalID
	if run, err := sdk.New(rp.d1.url, sdk.WithAPIKey(rp.agentKey)).Decide(ctx, risky); err != nil || !run.Allowed() {
		t.Fatalf("the call approved in the console: %+v, %v", run, err)
	}

	// Replica 2 restarted: still signed in, the same CSRF token still good.
	rp.d2.stop(t)
	rp.d2 = startServeEnv(t, rp.dir2, rp.env)
	status, body, _ = do("GET", rp.d2.url+"/console/approvals", token, nil)
	if status != http.StatusOK || !strings.Contains(body, `id="principal"`) {
		t.Fatalf("queue at the restarted replica: %d %.300s", status, body)
	}
	if m := csrfField.FindStringSubmatch(body); m == nil || m[1] != csrf {
		t.Fatalf("the restarted replica's CSRF token differs: %v", m)
	}

	// Signed out at replica 1 (the form replica 2's page carried): refused at replica 2.
	status, _, resp = do("POST", rp.d1.url+"/console/logout", token, url.Values{"csrf": {csrf}})
	if status != http.StatusSeeOther || !strings.HasSuffix(resp.Header.Get("Location"), "/console/login") {
		t.Fatalf("sign-out at replica 1: %d %s", status, resp.Header.Get("Location"))
	}
	status, _, resp = do("GET", rp.d2.url+"/console/approvals", token, nil)
	if status != http.StatusSeeOther || !strings.HasSuffix(resp.Header.Get("Location"), "/console/login") {
		t.Fatalf("replica 2 after sign-out at replica 1: %d %s, want a redirect to sign in", status, resp.Header.Get("Location"))
	}
	if status, _, _ = do("POST", rp.d2.url+"/console/approvals/"+held.ApprovalID+"/deny", token, url.Values{"csrf": {csrf}}); status != http.StatusUnauthorized {
		t.Fatalf("a vote with the signed-out cookie: %d, want 401", status)
	}
	rp.d1.stop(t)
	rp.d2.stop(t)
}

// checkAtRest reads what the session store holds: one session, under SHA-256 of the cookie
// token, whose data holds neither the token nor the approver key.
func checkAtRest(t *testing.T, rp *replicas, backend, token string) {
	t.Helper()
	ctx := context.Background()
	digest := sha256.Sum256([]byte(token))
	var keys [][]byte
	var datas []string
	switch backend {
	case "postgres":
		c, err := pgx.Connect(ctx, rp.dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		rows, err := c.Query(ctx, "SELECT key, data FROM "+pgx.Identifier{rp.schema, "console_sessions"}.Sanitize())
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k, d []byte
			if err := rows.Scan(&k, &d); err != nil {
				t.Fatal(err)
			}
			keys, datas = append(keys, k), append(datas, string(d))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	case "redis":
		rc := goredis.NewClient(&goredis.Options{Addr: os.Getenv("PORTCULLIS_TEST_REDIS")})
		defer rc.Close()
		found, err := rc.Keys(ctx, rp.prefix+"{console}:s:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range found {
			h, _ := hex.DecodeString(k[strings.LastIndexByte(k, ':')+1:])
			d, err := rc.HGet(ctx, k, "d").Result()
			if err != nil {
				t.Fatal(err)
			}
			keys, datas = append(keys, h), append(datas, d)
			if strings.Contains(k, token) {
				t.Errorf("the Redis key names the token: %s", k)
			}
		}
	}
	if len(keys) != 1 || !bytes.Equal(keys[0], digest[:]) {
		t.Fatalf("stored session keys %x, want the one digest %x", keys, digest)
	}
	// The key's secret: after "pcl_", its ID and "_".
	secretPart := rp.approverKey[len("pcl_")+16+1:]
	for _, secret := range []string{token, rp.approverKey, secretPart} {
		if strings.Contains(datas[0], secret) {
			t.Errorf("the stored session holds a secret %q: %s", secret, datas[0])
		}
	}
	if !strings.Contains(datas[0], `"key_id"`) {
		t.Errorf("the stored session names no key to check again: %s", datas[0])
	}
}
