package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/console/oidctest"
	"github.com/portcullis-ai/portcullis/sdk"
)

// chromium finds Debian's chromium, or skips the browser tests saying why.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("browser tests need chromium on PATH (apt-get install -y chromium); .ci/run installs it")
	return ""
}

// browser is one browser profile (its own cookies), driven by chromedp; its context times out a
// minute after the browser started.
func browser(t *testing.T, exe string) context.Context {
	t.Helper()
	// CookieSameSiteConsidersRedirectChain: SameSite as RFC 6265bis words it, where a request
	// whose redirect chain passed through another site is cross-site (Chromium's default still
	// looks at the initiator alone). The console must work for browsers that read it so.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-gpu", true), chromedp.Flag("enable-features", "CookieSameSiteConsidersRedirectChain"))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser on a context without a deadline
		cancelB()
		cancelA()
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancelC := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })
	return tctx
}

// shot writes docs/img/console-NAME.png when PORTCULLIS_UPDATE_SCREENSHOTS=1.
func shot(name string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		if os.Getenv("PORTCULLIS_UPDATE_SCREENSHOTS") != "1" {
			return chromedp.Void{}, nil
		}
		buf, err := chromedp.FullScreenshot(100)(ctx, t)
		if err != nil {
			return chromedp.Void{}, err
		}
		return chromedp.Void{}, os.WriteFile(filepath.Join("..", "docs", "img", "console-"+name+".png"), buf, 0o644)
	}
}

func signIn(base, key string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(base+"/console/login"),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), key),
		chromedp.Submit(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("principal")),
	)
}

// axeSource is axe-core's browser build, from e2e/node_modules (npm ci --prefix e2e).
var axeSource = sync.OnceValues(func() ([]byte, error) { return os.ReadFile(filepath.Join("node_modules", "axe-core", "axe.min.js")) })

// axeViolation is what the test reports of one axe-core violation.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// accessible runs axe-core (WCAG 2.x A and AA rules) in the page the browser shows and fails
// the test on any serious or critical violation. The script is evaluated through the DevTools
// protocol, which the page's Content-Security-Policy does not govern: the console itself still
// loads no script but its own.
func accessible(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	src, err := axeSource()
	if err != nil {
		t.Fatalf("axe-core is not installed (npm ci --prefix e2e): %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](string(src)+";\ntypeof axe === 'object'")); err != nil {
		t.Fatalf("%s: load axe-core: %v", page, err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}})
		.then(r => JSON.stringify(r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
			.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: run axe-core: %v", page, err)
	}
	var vs []axeViolation
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatalf("%s: axe-core's answer %q: %v", page, out, err)
	}
	for _, v := range vs {
		t.Errorf("%s: accessibility: %s (%s): %s at %v", page, v.ID, v.Impact, v.Help, v.Nodes)
	}
}

// pageText runs steps, then reads the text of sel.
func pageText(t *testing.T, ctx context.Context, sel string, steps ...chromedp.Action[chromedp.Void]) string {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// The console in a real browser against the real binary: an approver sees a held call arrive
// live, approves it with a comment, the agent's retry is ALLOWED, and the approval is in the
// audit explorer; an auditor cannot approve; an approver out of scope cannot see the request; a
// form posted from another origin changes nothing.
func TestConsoleInBrowser(t *testing.T) {
	exe := chromium(t)
	dir, agentKey, aliceKey := initData(t)
	cfgPath := filepath.Join(dir, app.ConfigFile)
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("  approvers:\n"), []byte("  approvers:\n    - id: audrey\n      role: auditor\n"+
		"    - id: bob\n      scopes:\n        - agents: [some-other-agent]\n          tools: [\".*\"]\n"+
		"    - id: ada\n      role: admin\n      scopes:\n        - agents: [some-other-agent]\n          tools: [\".*\"]\n"), 1)
	// A low floor, so that the agent's few denials below are a spike.
	cfg = append(cfg, "\nalerts:\n  spike_floor: 3\n"...)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	key := func(who string) string {
		code, out, stderr := cli(t, nil, "approvals", "keys", "create", "--approver", who, "--data", dir)
		if code != 0 {
			t.Fatalf("approvals keys create %s: %s", who, stderr)
		}
		return strings.TrimSpace(out)
	}
	audreyKey, bobKey, adaKey := key("audrey"), key("bob"), key("ada")
	d := startServe(t, dir)
	agent := sdk.New(d.url, sdk.WithAPIKey(agentKey), sdk.WithAgentID(app.DemoAgent))
	risky := func(n int) sdk.DecideRequest {
		return sdk.DecideRequest{Tool: "fetch_customer_names", Params: map[string]any{"limit": 10, "filter": fmt.Sprintf("x' UNION SELECT card_number FROM payments -- %d", n)}}
	}

	// A burst of denials: the alert rules raise a denial spike for the auditor's alerts page.
	for range 3 {
		if d, err := agent.Decide(context.Background(), sdk.DecideRequest{Tool: "delete_file", Params: map[string]any{"path": "/tmp/x"}}); err != nil || d.Decision != sdk.Deny {
			t.Fatalf("delete_file: %+v %v", d, err)
		}
	}

	// The agent's key opens nothing.
	alice := browser(t, exe)
	if err := chromedp.Do(alice, chromedp.Navigate(d.url+"/console/login"), chromedp.WaitVisible(chromedp.ID("key"))); err != nil {
		t.Fatal(err)
	}
	accessible(t, alice, "login")
	problem := pageText(t, alice, "#flash", chromedp.Navigate(d.url+"/console/login"), shot("login"),
		chromedp.SendKeys(chromedp.ID("key"), agentKey), chromedp.Submit(chromedp.ID("login")), chromedp.WaitVisible(chromedp.ID("flash")))
	if !strings.Contains(problem, "does not sign anyone in") {
		t.Fatalf("agent key at sign-in: %q", problem)
	}

	// Alice signs in and watches the queue; a held call arrives without a reload.
	if err := chromedp.Do(alice, signIn(d.url, aliceKey), chromedp.WaitVisible(chromedp.ID("queue")), chromedp.Sleep(500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	held, err := agent.Decide(context.Background(), risky(1))
	if err != nil || !held.Pending() {
		t.Fatalf("risky call: %+v, %v", held, err)
	}
	row := chromedp.CSS(fmt.Sprintf(`tr.req[data-id="%s"] a`, held.ApprovalID))
	if err := chromedp.Do(alice, chromedp.WaitVisible(row)); err != nil {
		t.Fatal(err)
	}
	accessible(t, alice, "approvals")
	grant := pageText(t, alice, "#grant", shot("queue"), chromedp.Click(row),
		chromedp.WaitVisible(chromedp.ID("approve-form")), shot("request"))
	accessible(t, alice, "request")
	state := pageText(t, alice, "#state", chromedp.SendKeys(chromedp.ID("comment"), "checked with the customer"),
		chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.ID("flash")))
	if !strings.Contains(grant, "fetch_customer_names") || !strings.Contains(grant, app.DemoAgent) || state != "approved" {
		t.Fatalf("grant %q, state %q", grant, state)
	}
	retry := risky(1)
	retry.ApprovalID = held.ApprovalID
	if run, err := agent.Decide(context.Background(), retry); err != nil || !run.Allowed() {
		t.Fatalf("the approved call's retry: %+v, %v", run, err)
	}

	// The approval is in the audit explorer; a record opens.
	recs := pageText(t, alice, "#records",
		chromedp.Navigate(d.url+"/console/approvals/history"), chromedp.WaitVisible(chromedp.ID("history")), shot("history"),
		chromedp.Navigate(d.url+"/console/audit"), chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), "checked with the customer"), chromedp.Submit(chromedp.ID("q")),
		// The page before the search lists records too: wait for the results page, whose search
		// box carries the text as its attribute (typing sets only the old box's property).
		chromedp.WaitVisible(chromedp.CSS(`#q[value="checked with the customer"]`)),
		chromedp.WaitVisible(chromedp.CSS("tr.rec")), shot("audit"))
	accessible(t, alice, "audit")
	if err := chromedp.Do(alice, chromedp.Navigate(d.url+"/console/approvals/history"), chromedp.WaitVisible(chromedp.ID("history"))); err != nil {
		t.Fatal(err)
	}
	accessible(t, alice, "history")
	overview := pageText(t, alice, "#counts", chromedp.Navigate(d.url+"/console/overview"), chromedp.WaitVisible(chromedp.ID("chart")), shot("overview"))
	accessible(t, alice, "overview")
	if !strings.Contains(overview, "Held for approval") {
		t.Fatalf("overview: %q", overview)
	}
	if err := chromedp.Do(alice, chromedp.Navigate(d.url+"/console/audit?q=checked+with+the+customer"), chromedp.WaitVisible(chromedp.CSS("tr.rec"))); err != nil {
		t.Fatal(err)
	}
	stored := pageText(t, alice, "#stored", chromedp.Click(chromedp.CSS("tr.rec a")), chromedp.WaitVisible(chromedp.ID("stored")), shot("record"))
	accessible(t, alice, "record")
	if !strings.Contains(recs, "approved by alice") || !strings.Contains(stored, held.ApprovalID) {
		t.Fatalf("audit explorer:\n%s\nrecord:\n%s", recs, stored)
	}

	// A second held call: the auditor reads it but has no way to approve it, and a post made from
	// its page with its own CSRF token is refused; bob, out of scope, does not see it at all.
	held2, err := agent.Decide(context.Background(), risky(2))
	if err != nil || !held2.Pending() {
		t.Fatalf("second risky call: %+v, %v", held2, err)
	}
	page := d.url + "/console/approvals/" + held2.ApprovalID
	audrey := browser(t, exe)
	if err := chromedp.Do(audrey, signIn(d.url, audreyKey), chromedp.Navigate(page), chromedp.WaitVisible(chromedp.ID("no-vote"))); err != nil {
		t.Fatal(err)
	}
	forms, err := chromedp.Run(audrey, chromedp.Evaluate[int](`document.querySelectorAll("#approve-form").length`))
	if err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(audrey, chromedp.Evaluate[int](fmt.Sprintf(`fetch(%q, {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"},
		body: "csrf=" + encodeURIComponent(document.querySelector("input[name=csrf]").value)}).then(r => r.status)`, page+"/approve"), chromedp.EvalAwaitPromise))
	if err != nil || forms != 0 || status != http.StatusForbidden {
		t.Fatalf("auditor: %d approve forms, forged post answered %d (%v)", forms, status, err)
	}

	// The auditor reads the agents: the demo agent, its decisions (one held call approved and
	// run, one held now), its API key's metadata, and a link to its records.
	agents := pageText(t, audrey, "#agents", chromedp.Navigate(d.url+"/console/agents"), chromedp.WaitVisible(chromedp.ID("agents")), shot("agents"))
	accessible(t, audrey, "agents")
	agentPage := pageText(t, audrey, "main", chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr.agent[data-id="%s"] a`, app.DemoAgent))),
		chromedp.WaitVisible(chromedp.ID("rate-chart")), shot("agent"))
	accessible(t, audrey, "agent")
	if !strings.Contains(agents, app.DemoAgent) || !strings.Contains(agentPage, "api key") || !strings.Contains(agentPage, "fetch_customer_names") {
		t.Fatalf("agents page:\n%s\nagent page:\n%s", agents, agentPage)
	}
	// The auditor reads the alerts: the agent's denial spike (the rules read the ledger within
	// a second or so of the denials; the page is reloaded until they have).
	var alerts string
	for deadline := time.Now().Add(30 * time.Second); ; {
		alerts = pageText(t, audrey, "#alerts", chromedp.Navigate(d.url+"/console/alerts"), chromedp.WaitVisible(chromedp.ID("alerts")))
		if strings.Contains(alerts, "denial_spike") || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := chromedp.Do(audrey, shot("alerts")); err != nil {
		t.Fatal(err)
	}
	accessible(t, audrey, "alerts")
	if !strings.Contains(alerts, "denial_spike") || !strings.Contains(alerts, app.DemoAgent) {
		t.Fatalf("alerts page:\n%s", alerts)
	}
	// Only an admin opens the policies page: the starter policy's version and its rules' hits.
	ada := browser(t, exe)
	rules := pageText(t, ada, "#rules", signIn(d.url, adaKey), chromedp.Navigate(d.url+"/console/policies"), chromedp.WaitVisible(chromedp.ID("rules")), shot("policies"))
	accessible(t, ada, "policies")
	if !strings.Contains(rules, "never fired") {
		t.Fatalf("policies page rules:\n%s", rules)
	}
	// A rule's place opens its file as parsed, the rule's lines marked.
	marked := pageText(t, ada, "#source", chromedp.Click(chromedp.CSS(`#rules tbody tr.rule td:nth-child(4) a`)), chromedp.WaitVisible(chromedp.ID("source")))
	accessible(t, ada, "policy source")
	if !strings.Contains(marked, "name:") {
		t.Fatalf("policy source page:\n%s", marked)
	}
	if denied := pageText(t, audrey, "#problem", chromedp.Navigate(d.url+"/console/policies"), chromedp.WaitVisible(chromedp.ID("problem"))); !strings.Contains(denied, "role") {
		t.Fatalf("an auditor opened the policies page: %q", denied)
	}
	bob := browser(t, exe)
	queue := pageText(t, bob, "#queue", signIn(d.url, bobKey), chromedp.WaitVisible(chromedp.ID("queue")))
	problem = pageText(t, bob, "#problem", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.ID("problem")))
	if strings.Contains(queue, held2.ApprovalID) || !strings.Contains(problem, "No such approval request") {
		t.Fatalf("bob sees an out-of-scope request: queue %q, page %q", queue, problem)
	}

	// Another origin's page posts an approval form in alice's browser: refused, nothing changes.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/approve"><input name="csrf" value="guess"><input name="comment" value="pwned"></form>
<script>document.getElementById("f").submit()</script>`, page)
	}))
	defer evil.Close()
	body := pageText(t, alice, "body", chromedp.Navigate(evil.URL), chromedp.Sleep(time.Second))
	state = pageText(t, alice, "#state", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.ID("state")))
	if state != "pending" {
		t.Fatalf("a cross-origin form changed the request: %s (page said %q)", state, body)
	}
}

// A person signs in through their identity provider in a real browser: the console sends them
// to the provider (authorization code with PKCE), the provider sends them back, and they land on
// the approvals queue signed in as issuer#subject. The console is reached as localhost and the
// provider as 127.0.0.1: two sites, as in production, so the return from the provider is a
// cross-site navigation.
func TestConsoleOIDCInBrowser(t *testing.T) {
	exe := chromium(t)
	idp := oidctest.New("olivia")
	defer idp.Close()
	dir, _, _ := initData(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	console := "http://localhost:" + addr[strings.LastIndex(addr, ":")+1:]
	cfgPath := filepath.Join(dir, app.ConfigFile)
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("  approvers:\n"), []byte(fmt.Sprintf("  approvers:\n    - id: olivia\n      issuer: %s\n"+
		"      scopes:\n        - agents: [\".*\"]\n          tools: [\".*\"]\n", idp.URL())), 1)
	cfg = append(cfg, fmt.Sprintf("\nconsole:\n  oidc:\n    issuer: %s\n    name: Example SSO\n    client_id: %s\n    client_secret_env: PORTCULLIS_CONSOLE_SECRET\n    redirect_url: %s/console/oidc/callback\n",
		idp.URL(), oidctest.ClientID, console)...)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	startServeAt(t, dir, addr, []string{"PORTCULLIS_CONSOLE_SECRET=" + oidctest.ClientSecret})
	b := browser(t, exe)
	if err := chromedp.Do(b, chromedp.Navigate(console+"/console/login"), chromedp.WaitVisible(chromedp.ID("oidc-start")), shot("login-oidc")); err != nil {
		t.Fatal(err)
	}
	accessible(t, b, "login with OIDC")
	if button := pageText(t, b, "#oidc-start"); button != "Sign in with Example SSO" {
		t.Fatalf("the sign-in button reads %q", button)
	}
	who := pageText(t, b, "#principal", chromedp.Click(chromedp.ID("oidc-start")), chromedp.WaitVisible(chromedp.ID("queue")))
	if who != idp.URL()+"#olivia" || idp.Verified() != 1 {
		t.Fatalf("signed in as %q (PKCE verified %d times)", who, idp.Verified())
	}
}
