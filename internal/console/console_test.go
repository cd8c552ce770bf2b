package console

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/ledger/ledgertest"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
)

// fakeAuth signs in the credentials it holds; revoke removes one.
type fakeAuth struct {
	mu sync.Mutex
	m  map[string]Principal
}

func (f *fakeAuth) ConsolePrincipal(_ context.Context, cred string) (Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.m[cred]
	if !ok {
		return Principal{}, errors.New("not an approver")
	}
	return p, nil
}

func (f *fakeAuth) revoke(cred string) {
	f.mu.Lock()
	delete(f.m, cred)
	f.mu.Unlock()
}

func human(id, role string, scopes ...approval.Scope) Principal {
	return Principal{Approver: approval.Approver{ID: id, Kind: approval.Human, Scopes: scopes}, Role: Role(role)}
}

var all = approval.Scope{Agents: []string{".*"}, Tools: []string{".*"}}

type rig struct {
	t      *testing.T
	srv    *httptest.Server
	engine *approval.Engine
	led    *ledger.Ledger
	auth   *fakeAuth
	c      *Console
}

const (
	keyAlice   = "pcl_alice"   // approver of everything
	keyBob     = "pcl_bob"     // approver of agent "other" only
	keyAuditor = "pcl_auditor" // auditor
	keyAgent   = "pcl_agent"   // an agent's key: not in the approvers' store
	keyAdmin   = "pcl_admin"   // admin, approves agent-a's calls
)

// directory declares agent-a, with an API key and a signing key, and agent-idle, which made no
// call.
var directory = fakeDirectory{
	{ID: "agent-a", Roles: []string{"support"}, Credentials: []Credential{
		{Kind: "api key", ID: "pcl_k1", Label: "laptop", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Status: "active"},
		{Kind: "signing key", ID: "sig-2026", Status: "active"}}},
	{ID: "agent-idle"},
}

type fakeDirectory []DeclaredAgent

func (f fakeDirectory) ConsoleAgents(context.Context) ([]DeclaredAgent, error) { return f, nil }

func newRig(t *testing.T, tlsOn bool) *rig { return newRigWith(t, tlsOn, nil) }

// newRigWith is newRig with its options changed by edit, which is told the console's base URL.
func newRigWith(t *testing.T, tlsOn bool, edit func(o *Options, base string)) *rig {
	t.Helper()
	keys := ledgertest.Keys(t)
	vs := ledgertest.Verifiers(t, keys)
	st := memory.New()
	led := ledgertest.Open(t, st, keys, ledger.Options{CheckpointInterval: 10 * time.Millisecond, CheckpointRecords: 10})
	eng, err := approval.New(approval.NewMemory(), approval.RecorderFunc(func(context.Context, approval.Event) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	auth := &fakeAuth{m: map[string]Principal{
		keyAlice:   human("alice", "approver", all),
		keyBob:     human("bob", "approver", approval.Scope{Agents: []string{"other"}, Tools: []string{".*"}}),
		keyAuditor: human("audrey", "auditor"),
		keyAdmin:   human("adam", "admin", approval.Scope{Agents: []string{"agent-a"}, Tools: []string{".*"}}),
	}}
	opts := Options{Path: "/console", Queue: eng, Auth: auth, Ledger: st, Verifiers: vs, Poll: 20 * time.Millisecond,
		Agents: directory, Policies: func() PolicyState { return PolicyState{Set: rigPolicies(t)} }}
	mux := http.NewServeMux()
	var srv *httptest.Server
	if tlsOn {
		srv = httptest.NewTLSServer(mux)
	} else {
		srv = httptest.NewServer(mux)
	}
	t.Cleanup(srv.Close)
	if edit != nil {
		edit(&opts, srv.URL)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c.Register(mux)
	return &rig{t: t, srv: srv, engine: eng, led: led, auth: auth, c: c}
}

// hold opens a pending request for agent's call of tool.
func (r *rig) hold(agent, tool, params string) approval.Request {
	r.t.Helper()
	req, err := r.engine.Request(context.Background(), approval.Input{DecisionID: "dec_" + agent + tool, Agent: agent, Tool: tool,
		Params: json.RawMessage(params), RedactedParams: json.RawMessage(params), Rule: "hold-risky", PolicyVersion: "v1", Required: 1})
	if err != nil {
		r.t.Fatal(err)
	}
	return req
}

// client is a browser: a cookie jar, no automatic redirects.
func (r *rig) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := new(http.Client)
	*c = *r.srv.Client() // a copy: each browser its own jar
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

func (r *rig) signIn(key string) *http.Client {
	r.t.Helper()
	c := r.client()
	resp := r.post(c, "/console/login", url.Values{"key": {key}}, r.srv.URL)
	if resp.StatusCode != http.StatusSeeOther {
		r.t.Fatalf("sign in with %s: %d", key, resp.StatusCode)
	}
	return c
}

func (r *rig) post(c *http.Client, path string, form url.Values, origin string) *http.Response {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
		if origin == r.srv.URL {
			req.Header.Set("Sec-Fetch-Site", "same-origin")
		} else {
			req.Header.Set("Sec-Fetch-Site", "cross-site")
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusForbidden {
		r.t.Logf("POST %s: 403 %s", path, regexp.MustCompile(`id="problem">[^<]*`).Find(b))
	}
	return resp
}

func (r *rig) get(c *http.Client, path string) (int, string, http.Header) {
	r.t.Helper()
	resp, err := c.Get(r.srv.URL + path)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (r *rig) csrf(c *http.Client, page string) string {
	r.t.Helper()
	_, body, _ := r.get(c, page)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		r.t.Fatalf("no CSRF token on %s", page)
	}
	return m[1]
}

func (r *rig) state(id string) approval.State {
	r.t.Helper()
	q, err := r.engine.Get(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return q.State
}

func TestPagesRequireSignIn(t *testing.T) {
	r := newRig(t, false)
	req := r.hold("agent-a", "fetch", `{"q":1}`)
	c := r.client()
	for _, p := range []string{"/console/approvals", "/console/approvals/history", "/console/approvals/" + req.ID, "/console/audit",
		"/console/audit/0", "/console/audit/0/proof", "/console/audit/export?format=jsonl"} {
		code, _, h := r.get(c, p)
		if code != http.StatusSeeOther || h.Get("Location") != "/console/login" {
			t.Errorf("GET %s signed out: %d %q, want a redirect to sign in", p, code, h.Get("Location"))
		}
	}
	for _, p := range []string{"/console/approvals/rows", "/console/approvals/events"} {
		if code, _, _ := r.get(c, p); code != http.StatusUnauthorized {
			t.Errorf("GET %s signed out: %d, want 401", p, code)
		}
	}
	// A forged cookie is nobody.
	u, _ := url.Parse(r.srv.URL)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName, Value: "forged", Path: "/console"}})
	if code, _, _ := r.get(c, "/console/approvals"); code != http.StatusSeeOther {
		t.Errorf("forged session cookie: %d", code)
	}
	if resp := r.post(c, "/console/approvals/"+req.ID+"/approve", url.Values{"csrf": {"x"}}, r.srv.URL); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("approve signed out: %d", resp.StatusCode)
	}
	if r.state(req.ID) != approval.Pending {
		t.Fatal("a signed-out post changed the request")
	}
}

func TestAgentCredentialNeverSignsIn(t *testing.T) {
	r := newRig(t, false)
	for _, key := range []string{keyAgent, "", strings.Repeat("k", maxCredentialBytes+1)} {
		c := r.client()
		resp := r.post(c, "/console/login", url.Values{"key": {key}}, r.srv.URL)
		if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
			t.Errorf("sign in with %.12q: %d, cookies %v", key, resp.StatusCode, resp.Cookies())
		}
		if code, _, _ := r.get(c, "/console/approvals"); code != http.StatusSeeOther {
			t.Errorf("after a refused sign-in the console opened: %d", code)
		}
	}
}

func TestHeadersAndCookie(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		r := newRig(t, tlsOn)
		c := r.client()
		resp := r.post(c, "/console/login", url.Values{"key": {keyAlice}}, r.srv.URL)
		cs := resp.Cookies()
		if len(cs) != 1 || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode || cs[0].Secure != tlsOn || cs[0].Path != "/console" {
			t.Errorf("tls=%v: session cookie %+v", tlsOn, cs)
		}
		r.hold("agent-a", "fetch", `{"q":"<script>alert(1)</script>"}`)
		for _, p := range []string{"/console/login", "/console/approvals", "/console/audit", "/console/approvals/history"} {
			code, body, h := r.get(c, p)
			if code != http.StatusOK {
				t.Errorf("GET %s: %d", p, code)
			}
			if h.Get("Content-Security-Policy") != csp || h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" {
				t.Errorf("GET %s: headers %v", p, h)
			}
			if strings.Contains(body, "<script>") || regexp.MustCompile(`\son[a-z]+=`).MatchString(body) || strings.Contains(body, "style=") {
				t.Errorf("GET %s: inline script or style in the page", p)
			}
		}
	}
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("csp %q", csp)
	}
}

func TestCSRFAndCrossOrigin(t *testing.T) {
	r := newRig(t, false)
	req := r.hold("agent-a", "fetch", `{"q":1}`)
	c := r.signIn(keyAlice)
	token := r.csrf(c, "/console/approvals/"+req.ID)
	path := "/console/approvals/" + req.ID + "/approve"
	// No token, a wrong token, and the right token posted from another origin: all refused.
	for _, tc := range []struct {
		form   url.Values
		origin string
	}{
		{url.Values{"comment": {"x"}}, r.srv.URL},
		{url.Values{"csrf": {"wrong"}}, r.srv.URL},
		{url.Values{"csrf": {token}}, "https://evil.example"},
	} {
		if resp := r.post(c, path, tc.form, tc.origin); resp.StatusCode != http.StatusForbidden {
			t.Errorf("post %v from %s: %d, want 403", tc.form, tc.origin, resp.StatusCode)
		}
	}
	// Another session's token is not this session's.
	other := r.signIn(keyAlice)
	if resp := r.post(other, path, url.Values{"csrf": {token}}, r.srv.URL); resp.StatusCode != http.StatusForbidden {
		t.Errorf("another session's token: %d", resp.StatusCode)
	}
	if r.state(req.ID) != approval.Pending {
		t.Fatal("a refused post changed the request")
	}
	resp := r.post(c, path, url.Values{"csrf": {token}, "comment": {"checked"}}, r.srv.URL)
	if resp.StatusCode != http.StatusSeeOther || r.state(req.ID) != approval.Approved {
		t.Fatalf("approve with the token: %d, state %s", resp.StatusCode, r.state(req.ID))
	}
	q, _ := r.engine.Get(context.Background(), req.ID)
	if len(q.Votes) != 1 || q.Votes[0].Approver != "alice" || q.Votes[0].Comment != "checked" {
		t.Errorf("votes %+v", q.Votes)
	}
	// Cross-origin sign-in (login CSRF) is refused too.
	if resp := r.post(r.client(), "/console/login", url.Values{"key": {keyAlice}}, "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin sign-in: %d", resp.StatusCode)
	}
}

func TestAuditorReadsButCannotApprove(t *testing.T) {
	r := newRig(t, false)
	req := r.hold("agent-a", "fetch", `{"q":1}`)
	c := r.signIn(keyAuditor)
	code, body, _ := r.get(c, "/console/approvals/"+req.ID)
	if code != http.StatusOK || strings.Contains(body, `id="approve-form"`) || !strings.Contains(body, "not decide it") {
		t.Fatalf("auditor's request page: %d", code)
	}
	token := r.csrf(c, "/console/approvals")
	for _, verb := range []string{"approve", "deny"} {
		if resp := r.post(c, "/console/approvals/"+req.ID+"/"+verb, url.Values{"csrf": {token}}, r.srv.URL); resp.StatusCode != http.StatusForbidden {
			t.Errorf("auditor %s: %d", verb, resp.StatusCode)
		}
	}
	if r.state(req.ID) != approval.Pending {
		t.Fatal("an auditor changed the request")
	}
}

func TestOutOfScopeApproverSeesNothing(t *testing.T) {
	r := newRig(t, false)
	req := r.hold("agent-a", "fetch", `{"q":1}`)
	mine := r.hold("other", "fetch", `{"q":2}`)
	if _, err := r.led.Append(context.Background(), &ledger.Record{Kind: ledger.KindDecision, DecisionID: "dec_x",
		Agent: &ledger.Principal{ID: "agent-a"}, Tool: "fetch", Decision: "allow"}); err != nil {
		t.Fatal(err)
	}
	c := r.signIn(keyBob)
	_, body, _ := r.get(c, "/console/approvals")
	if strings.Contains(body, req.ID) || !strings.Contains(body, mine.ID) {
		t.Errorf("bob's queue lists the wrong requests")
	}
	if _, body, _ := r.get(c, "/console/approvals/rows"); strings.Contains(body, req.ID) {
		t.Errorf("bob's live rows list an out-of-scope request")
	}
	if code, _, _ := r.get(c, "/console/approvals/"+req.ID); code != http.StatusNotFound {
		t.Errorf("out-of-scope request page: %d", code)
	}
	token := r.csrf(c, "/console/approvals")
	if resp := r.post(c, "/console/approvals/"+req.ID+"/approve", url.Values{"csrf": {token}}, r.srv.URL); resp.StatusCode != http.StatusNotFound {
		t.Errorf("out-of-scope approve: %d", resp.StatusCode)
	}
	if r.state(req.ID) != approval.Pending {
		t.Fatal("an out-of-scope approver changed the request")
	}
	if _, body, _ := r.get(c, "/console/audit"); strings.Contains(body, "dec_x") || strings.Contains(body, `class="rec"`) {
		t.Errorf("bob's audit view lists agent-a's record")
	}
	if code, _, _ := r.get(c, "/console/audit/0"); code != http.StatusNotFound {
		t.Errorf("out-of-scope record page: %d", code)
	}
}

func TestRevokedKeyEndsSession(t *testing.T) {
	r := newRig(t, false)
	c := r.signIn(keyAlice)
	if code, _, _ := r.get(c, "/console/approvals"); code != http.StatusOK {
		t.Fatalf("signed in: %d", code)
	}
	r.auth.revoke(keyAlice)
	if code, _, _ := r.get(c, "/console/approvals"); code != http.StatusSeeOther {
		t.Fatalf("after revocation: %d", code)
	}
}

func TestLiveQueueAnnouncesNewRequest(t *testing.T) {
	r := newRig(t, false)
	c := r.signIn(keyAlice)
	lines := r.liveQueue(c)
	next := func() string {
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, "data: ") {
				return l
			}
		}
		t.Fatalf("stream ended: %v", lines.Err())
		return ""
	}
	if got := next(); got != "data: 0" {
		t.Fatalf("first event %q", got)
	}
	req := r.hold("agent-a", "fetch", `{"q":1}`)
	if got := next(); got != "data: 1" {
		t.Fatalf("after a new request: %q", got)
	}
	_, rows, _ := r.get(c, "/console/approvals/rows")
	if !strings.Contains(rows, req.ID) {
		t.Fatal("rows lack the new request")
	}
}

// liveQueue opens the live queue's event stream as c, and returns its lines; the stream is
// closed when the test ends.
func (r *rig) liveQueue(c *http.Client) *bufio.Scanner {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	r.t.Cleanup(cancel)
	hreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.srv.URL+"/console/approvals/events", nil)
	resp, err := c.Do(hreq)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { resp.Body.Close() })
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		r.t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	return bufio.NewScanner(resp.Body)
}

func TestMarkRedacted(t *testing.T) {
	got := string(markRedacted([]byte(`{"a":"<b>[REDACTED:aws_key]</b>","k":"hmac-sha256:0123456789abcdef0123"}`)))
	want := `{&#34;a&#34;:&#34;&lt;b&gt;<mark class="redacted" title="redacted by the gateway">[REDACTED:aws_key]</mark>&lt;/b&gt;&#34;,&#34;k&#34;:&#34;<mark class="redacted" title="redacted by the gateway">hmac-sha256:0123456789abcdef0123</mark>&#34;}`
	if got != want {
		t.Errorf("markRedacted:\n got %s\nwant %s", got, want)
	}
}

func TestAuditSearchPagingExportProof(t *testing.T) {
	r := newRig(t, false)
	ctx := context.Background()
	for i := range 130 {
		tool := "fetch"
		if i%2 == 1 {
			tool = "=cmd|' /C calc'!A0" // an agent-chosen name a spreadsheet would run
		}
		if _, err := r.led.Append(ctx, &ledger.Record{Kind: ledger.KindDecision, DecisionID: "dec_" + string(rune('a'+i%26)),
			Agent: &ledger.Principal{ID: "agent-a"}, Tool: tool, Decision: "allow", Params: json.RawMessage(`{"n":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.led.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	c := r.signIn(keyAuditor)
	code, body, _ := r.get(c, "/console/audit?tool=fetch")
	if code != http.StatusOK || strings.Count(body, `class="rec"`) != pageSize || !strings.Contains(body, "its signature verifies") {
		t.Fatalf("first page: %d, %d rows", code, strings.Count(body, `class="rec"`))
	}
	m := regexp.MustCompile(`id="older" href="[^"]*before=(\d+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no link to older records")
	}
	seen := strings.Count(body, `class="rec"`)
	for m != nil {
		_, body, _ = r.get(c, "/console/audit?tool=fetch&before="+m[1])
		seen += strings.Count(body, `class="rec"`)
		m = regexp.MustCompile(`id="older" href="[^"]*before=(\d+)"`).FindStringSubmatch(body)
	}
	if seen != 65 {
		t.Errorf("paged through %d records, want 65", seen)
	}
	if code, _, _ := r.get(c, "/console/audit?since=yesterday"); code != http.StatusBadRequest {
		t.Errorf("bad since: %d", code)
	}
	_, jsonl, _ := r.get(c, "/console/audit/export?format=jsonl&tool=fetch")
	if n := strings.Count(jsonl, "\n"); n != 65 {
		t.Errorf("jsonl export: %d lines", n)
	}
	_, csvText, _ := r.get(c, "/console/audit/export?format=csv&decision=allow")
	if !strings.Contains(csvText, "'=cmd") || strings.Contains(csvText, ",=cmd") {
		t.Errorf("csv export does not defuse formulas:\n%.300s", csvText)
	}
	code, body, _ = r.get(c, "/console/audit/3")
	if code != http.StatusOK || !strings.Contains(body, `id="proof"`) {
		t.Fatalf("record page: %d", code)
	}
	resp, err := c.Get(r.srv.URL + "/console/audit/3/proof")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var proof ledger.InclusionProof
	if err := json.NewDecoder(resp.Body).Decode(&proof); err != nil || proof.Index != 3 || proof.Verify() != nil {
		t.Fatalf("proof: %+v %v", proof, err)
	}
}

func TestOverviewCountsWhatThePersonMaySee(t *testing.T) {
	r := newRig(t, false)
	ctx := context.Background()
	for i, rec := range []struct{ agent, tool, decision string }{
		{"agent-a", "delete_file", "deny"}, {"agent-a", "delete_file", "deny"}, {"agent-a", "fetch", "allow"},
		{"other", "wire", "deny"}, {"other", "fetch", "allow"}, {"other", "fetch", "constrain"},
	} {
		if _, err := r.led.Append(ctx, &ledger.Record{Kind: ledger.KindDecision, DecisionID: fmt.Sprintf("dec_%d", i),
			Agent: &ledger.Principal{ID: rec.agent}, Tool: rec.tool, Decision: rec.decision}); err != nil {
			t.Fatal(err)
		}
	}
	r.hold("agent-a", "fetch", `{"q":1}`)
	code, body, _ := r.get(r.signIn(keyAuditor), "/console/overview")
	if code != http.StatusOK || !strings.Contains(body, `id="pending">1<`) || strings.Count(body, "<rect ") != 3 ||
		!strings.Contains(body, "<code>delete_file</code></a></td><td>2</td>") {
		t.Fatalf("auditor's overview: %d\n%s", code, body)
	}
	// Bob sees agent "other" only: its denial, none of agent-a's, and no pending request.
	_, body, _ = r.get(r.signIn(keyBob), "/console/overview")
	if strings.Contains(body, "delete_file") || !strings.Contains(body, "<code>wire</code>") || !strings.Contains(body, `id="pending">0<`) {
		t.Fatalf("bob's overview:\n%s", body)
	}
}

// The pages say how many records a search or a statistic reads from the budgets themselves.
func TestBudgetsShownFromTheirConstants(t *testing.T) {
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 65536: "65,536", 200000: "200,000", 1234567: "1,234,567"} {
		if got := grouped(n); got != want {
			t.Errorf("grouped(%d) = %q, want %q", n, got, want)
		}
	}
	r := newRig(t, false)
	now := time.Now()
	for i := range pageSize + 5 {
		r.appendDecision("agent-a", "fetch", "allow", now.Add(time.Duration(i)*time.Millisecond))
	}
	c := r.signIn(keyAuditor)
	_, body, _ := r.get(c, "/console/audit?q=fetch")
	if want := "at most " + grouped(scanBudget) + " records a page"; !strings.Contains(body, want) {
		t.Fatalf("the audit page of a scanned search does not say %q:\n%.2000s", want, body)
	}
}
