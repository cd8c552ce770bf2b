package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// filesystemServer is the entry point of @modelcontextprotocol/server-filesystem, installed by
// `npm ci --prefix e2e`. Tests that need it skip, saying so, when it is absent.
func filesystemServer(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skip("e2e/node_modules is absent: run `npm ci --prefix e2e` to install the MCP servers these tests drive")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	return p
}

var (
	builtMu sync.Mutex
	built   = map[string]string{} // package → binary
)

// goBuild builds a Go command package (a path under e2e or an import path) once per test run.
func goBuild(t *testing.T, pkg string) string {
	t.Helper()
	builtMu.Lock()
	defer builtMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "portcullis-e2e-bin-")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", p, pkg).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = p
	return p
}

// echoServer builds the tiny Go MCP server in testdata/mcpecho.
func echoServer(t *testing.T) string { return goBuild(t, "./testdata/mcpecho") }

// writePolicy replaces the demo agent's policy.
func writePolicy(t *testing.T, dir, policy string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "policies", "report-generator-v1.yaml"), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
}

// appendConfig adds YAML to the data directory's configuration.
func appendConfig(t *testing.T, dir, yaml string) {
	t.Helper()
	p := filepath.Join(dir, "portcullis.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append(b, []byte("\n"+yaml)...), 0o600); err != nil {
		t.Fatal(err)
	}
}

func fsPolicy(root, prefix string) string {
	q := regexp.QuoteMeta(root)
	return `agent_id: report-generator-v1
default_action: DENY
rules:
  - name: read_inside_root
    tool: "` + prefix + `(read_text_file|list_directory|get_file_info)"
    action: ALLOW
    conditions:
      - parameter: path
        match: "^` + q + `(/.*)?$"
        not_match: "\\.\\."
  - name: where
    tool: "` + prefix + `list_allowed_directories"
    action: ALLOW
  - name: write_reports_with_approval
    tool: "` + prefix + `write_file"
    action: CONSTRAIN
    conditions:
      - parameter: path
        match: "^` + q + `/reports/[a-z0-9_-]+\\.txt$"
    enforcement: require_human_approval
`
}

func toolNames(t *testing.T, ctx context.Context, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	return names
}

func text(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func call(t *testing.T, ctx context.Context, cs *mcp.ClientSession, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	return res
}

func auditVerify(t *testing.T, dir string) {
	t.Helper()
	code, out, stderr := cli(t, nil, "audit", "verify", "--data", dir)
	if code != 0 || !strings.Contains(out, `"intact": true`) {
		t.Fatalf("audit verify: %d %s %s", code, out, stderr)
	}
}

// TestMCPStdioWrapperFilesystem: the real server-filesystem behind `portcullis mcp -- node ...`,
// driven by the go-sdk client as Claude Desktop would launch it.
func TestMCPStdioWrapperFilesystem(t *testing.T) {
	fsServer := filesystemServer(t)
	dir, agentKey, _ := initData(t)
	root := t.TempDir()
	root, _ = filepath.EvalSymlinks(root)
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello from the root"), 0o600); err != nil {
		t.Fatal(err)
	}
	secretDir := filepath.Dir(root)
	secret := filepath.Join(secretDir, "outside-"+filepath.Base(root)+".txt")
	if err := os.WriteFile(secret, []byte("outside secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(secret) })
	writePolicy(t, dir, fsPolicy(root, ""))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.Command(binary(t), "mcp", "--data", dir, "--", "node", fsServer, root)
	cmd.Env = append(os.Environ(), "PORTCULLIS_API_KEY="+agentKey)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, stderr.String())
	}

	// Only the tools the policy could ever allow are listed.
	want := []string{"get_file_info", "list_allowed_directories", "list_directory", "read_text_file", "write_file"}
	if diff := cmpDiff(want, toolNames(t, ctx, cs)); diff != "" {
		t.Errorf("tools/list (-want +got):\n%s", diff)
	}

	// An allowed read works.
	res := call(t, ctx, cs, "read_text_file", map[string]any{"path": filepath.Join(root, "hello.txt")})
	if res.IsError || !strings.Contains(text(res), "hello from the root") {
		t.Errorf("allowed read: %+v %q", res.IsError, text(res))
	}
	// A traversal attempt is denied and reveals nothing.
	res = call(t, ctx, cs, "read_text_file", map[string]any{"path": root + "/../" + filepath.Base(secret)})
	if !res.IsError || strings.Contains(text(res), "outside secret") || strings.Contains(text(res), "rule") {
		t.Errorf("traversal: %+v %q", res.IsError, text(res))
	}
	// A write outside the allowed path is denied — although the server itself would allow it —
	// and the file is untouched.
	target := filepath.Join(root, "hello.txt")
	res = call(t, ctx, cs, "write_file", map[string]any{"path": target, "content": "overwritten"})
	if !res.IsError {
		t.Errorf("write outside the allowed path ran: %q", text(res))
	}
	if b, _ := os.ReadFile(target); string(b) != "hello from the root" {
		t.Errorf("the file changed: %q", b)
	}
	// A tool the policy never allows is refused even when called by name.
	res = call(t, ctx, cs, "move_file", map[string]any{"source": target, "destination": filepath.Join(root, "moved.txt")})
	if !res.IsError {
		t.Errorf("move_file ran: %q", text(res))
	}
	if _, err := os.Stat(target); err != nil {
		t.Errorf("the file moved: %v", err)
	}
	// Malformed arguments are an error, not a crash, and nothing is forwarded.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_text_file", Arguments: []int{1, 2}})
	if err == nil && !res.IsError {
		t.Errorf("array arguments ran: %q", text(res))
	}
	// The session still works after all that.
	if res := call(t, ctx, cs, "list_allowed_directories", nil); res.IsError {
		t.Errorf("list_allowed_directories: %q", text(res))
	}
	if err := cs.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	auditVerify(t, dir)
	code, out, _ := cli(t, nil, "audit", "search", "--data", dir, "--tool", "write_file")
	if code != 0 || !strings.Contains(out, `"deny"`) {
		t.Errorf("audit search lacks the denied write (exit %d): %s", code, out)
	}
}

type keyTransport struct{ key string }

func (k keyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+k.key)
	return http.DefaultTransport.RoundTrip(r)
}

func httpClient(t *testing.T, ctx context.Context, url, key string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url + "/mcp", HTTPClient: &http.Client{Transport: keyTransport{key}}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect %s/mcp: %v", url, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

var approvalRe = regexp.MustCompile(`apr_[A-Za-z0-9]+`)

// TestMCPHTTPGatewayApproveOnce: `portcullis serve` with server-filesystem as an upstream at
// /mcp; a CONSTRAIN write is held, approved with the CLI and runs exactly once.
func TestMCPHTTPGatewayApproveOnce(t *testing.T) {
	fsServer := filesystemServer(t)
	dir, agentKey, approverKey := initData(t)
	root := t.TempDir()
	root, _ = filepath.EvalSymlinks(root)
	if err := os.MkdirAll(filepath.Join(root, "reports"), 0o700); err != nil {
		t.Fatal(err)
	}
	writePolicy(t, dir, fsPolicy(root, "fs__"))
	appendConfig(t, dir, "mcp:\n  approval_wait: 1s\n  upstreams:\n    - name: fs\n      command: node\n      args: [\""+fsServer+"\", \""+root+"\"]\n")
	// A second agent, to show sessions are bound to the agent that opened them.
	cfgPath := filepath.Join(dir, "portcullis.yaml")
	cfg, _ := os.ReadFile(cfgPath)
	cfg = bytes.Replace(cfg, []byte("  agents:\n"), []byte("  agents:\n    - id: other-agent\n      roles: [reporting]\n"), 1)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	code, otherKey, stderr := cli(t, nil, "keys", "create", "--agent", "other-agent", "--data", dir)
	otherKey = strings.TrimSpace(otherKey)
	if code != 0 || !strings.HasPrefix(otherKey, "pcl_") {
		t.Fatalf("keys create: %d %q %s", code, otherKey, stderr)
	}
	d := startServe(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// No credential: no session at all.
	resp, err := http.Post(d.url+"/mcp", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata") {
		t.Errorf("unauthenticated initialize: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, err := http.Get(d.url + "/.well-known/oauth-protected-resource/mcp"); err != nil || resp.StatusCode != 200 {
		t.Errorf("protected resource metadata: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	cs := httpClient(t, ctx, d.url, agentKey)
	names := toolNames(t, ctx, cs)

	// Another agent's credential on this agent's session is refused.
	hijack, _ := http.NewRequest(http.MethodPost, d.url+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/list"}`))
	hijack.Header.Set("Authorization", "Bearer "+otherKey)
	hijack.Header.Set("Mcp-Session-Id", cs.ID())
	hijack.Header.Set("Content-Type", "application/json")
	hijack.Header.Set("Accept", "application/json, text/event-stream")
	if resp, err := http.DefaultClient.Do(hijack); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("session hijack: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if !slices.Contains(names, "fs__write_file") || slices.Contains(names, "fs__move_file") || slices.Contains(names, "write_file") {
		t.Errorf("tools/list: %v", names)
	}
	report := filepath.Join(root, "reports", "q1.txt")
	args := map[string]any{"path": report, "content": "quarterly numbers"}
	held := call(t, ctx, cs, "fs__write_file", args)
	id := approvalRe.FindString(text(held))
	if !held.IsError || id == "" {
		t.Fatalf("the write was not held for approval: %q", text(held))
	}
	if _, err := os.Stat(report); err == nil {
		t.Fatal("the held write ran before approval")
	}
	approverEnv := []string{"PORTCULLIS_URL=" + d.url, "PORTCULLIS_APPROVER_KEY=" + approverKey}
	if code, out, stderr := cli(t, approverEnv, "approvals", "approve", id, "--comment", "ok"); code != 0 {
		t.Fatalf("approvals approve: %d %s %s", code, out, stderr)
	}
	args["_portcullis_approval_id"] = id
	run := call(t, ctx, cs, "fs__write_file", args)
	if run.IsError {
		t.Fatalf("approved write: %q", text(run))
	}
	if b, err := os.ReadFile(report); err != nil || string(b) != "quarterly numbers" {
		t.Fatalf("approved write did not write: %q %v", b, err)
	}
	if err := os.Remove(report); err != nil {
		t.Fatal(err)
	}
	again := call(t, ctx, cs, "fs__write_file", args)
	if !again.IsError {
		t.Fatalf("the grant was used twice: %q", text(again))
	}
	if _, err := os.Stat(report); err == nil {
		t.Fatal("the second use of the grant wrote the file")
	}
	cs.Close()
	d.stop(t)
	auditVerify(t, dir)
	code, out, _ := cli(t, nil, "audit", "search", "--data", dir, "--tool", "fs__write_file")
	if code != 0 || !strings.Contains(out, "approval consumed") {
		t.Errorf("audit search lacks the redeemed grant (exit %d): %s", code, out)
	}
}

// TestMCPToolDefinitionChangeBlocked: a rug pull — the server changes a tool's description
// between runs — blocks the tool until `portcullis mcp pins approve`.
func TestMCPToolDefinitionChangeBlocked(t *testing.T) {
	echo := echoServer(t)
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, `agent_id: report-generator-v1
default_action: DENY
rules:
  - name: echo
    tool: "pin__echo"
    action: ALLOW
`)
	cfgPath := filepath.Join(dir, "portcullis.yaml")
	base, _ := os.ReadFile(cfgPath)
	withDesc := func(desc string) {
		cfg := string(base) + "\nmcp:\n  upstreams:\n    - name: pin\n      command: \"" + echo + "\"\n      env:\n        ECHO_DESCRIPTION: \"" + desc + "\"\n"
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	session := func(desc string) (*daemon, *mcp.ClientSession) {
		withDesc(desc)
		d := startServe(t, dir)
		return d, httpClient(t, ctx, d.url, agentKey)
	}

	d, cs := session("Echoes the text back.")
	if names := toolNames(t, ctx, cs); !slices.Equal(names, []string{"pin__echo"}) {
		t.Fatalf("first run tools/list: %v", names)
	}
	if r := call(t, ctx, cs, "pin__echo", map[string]any{"text": "hi"}); r.IsError {
		t.Fatalf("first run echo: %q", text(r))
	}
	cs.Close()
	d.stop(t)

	d, cs = session("Echoes the text back, now in version 2.")
	if names := toolNames(t, ctx, cs); len(names) != 0 {
		t.Errorf("changed definition still listed: %v", names)
	}
	if r := call(t, ctx, cs, "pin__echo", map[string]any{"text": "hi"}); !r.IsError {
		t.Errorf("changed definition still callable: %q", text(r))
	}
	cs.Close()
	d.stop(t)
	code, out, _ := cli(t, nil, "mcp", "pins", "list", "--data", dir)
	if code != 0 || !strings.Contains(out, "CHANGED") {
		t.Fatalf("mcp pins list: %d %s", code, out)
	}
	if code, out, stderr := cli(t, nil, "mcp", "pins", "approve", "pin__echo", "--data", dir, "--by", "alice"); code != 0 {
		t.Fatalf("mcp pins approve: %d %s %s", code, out, stderr)
	}

	d, cs = session("Echoes the text back, now in version 2.")
	names := toolNames(t, ctx, cs)
	r := call(t, ctx, cs, "pin__echo", map[string]any{"text": "hi"})
	cs.Close()
	d.stop(t)
	if !slices.Equal(names, []string{"pin__echo"}) || r.IsError {
		t.Errorf("after approval: tools %v, call error %v %q", names, r.IsError, text(r))
	}
	auditVerify(t, dir)
	code, out, _ = cli(t, nil, "audit", "search", "--data", dir, "--tool", "pin__echo")
	for _, reason := range []string{"tool_pinned", "tool_definition_changed", "tool_pin_approved"} {
		if code != 0 || !strings.Contains(out, reason) {
			t.Errorf("audit search lacks %s (exit %d)", reason, code)
		}
	}
}

// TestMCPInventoryStarterPolicy: `portcullis inventory` against the real server-filesystem ranks
// its tools and writes a starter policy that `portcullis policy check` accepts.
func TestMCPInventoryStarterPolicy(t *testing.T) {
	fsServer := filesystemServer(t)
	out := filepath.Join(t.TempDir(), "starter.yaml")
	code, stdout, stderr := cli(t, nil, "inventory", "--agent", "report-generator-v1", "--prefix", "fs__", "--out", out, "--", "node", fsServer, t.TempDir())
	if code != 0 {
		t.Fatalf("inventory: %d %s %s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) < 15 || !strings.HasPrefix(lines[0], "RISK") || !strings.HasPrefix(lines[1], "high") {
		t.Fatalf("inventory table, riskiest first:\n%s", stdout)
	}
	for _, want := range []string{"low       fs__read_text_file", "high      fs__write_file", "high      fs__move_file"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("inventory lacks %q:\n%s", want, stdout)
		}
	}
	if code, out, stderr := cli(t, nil, "policy", "check", out); code != 0 {
		t.Fatalf("policy check rejects the starter policy: %d %s %s", code, out, stderr)
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), "default_action: DENY") || !strings.Contains(string(b), "action: CONSTRAIN") {
		t.Errorf("starter policy:\n%s", b)
	}
}

// TestMCPStdioRobustness speaks raw JSON-RPC to the stdio wrapper in front of the tiny Go server:
// malformed JSON, an unknown method and an oversized message get clear JSON-RPC errors and the
// session goes on; an upstream that dies mid-call yields an error result, not a hang, and is
// restarted for the next call.
func TestMCPStdioRobustness(t *testing.T) {
	echo := echoServer(t)
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, `agent_id: report-generator-v1
default_action: DENY
rules:
  - name: e
    tool: "e__(echo|die|env)"
    action: ALLOW
`)
	cmd := exec.Command(binary(t), "mcp", "--data", dir, "--name", "e", "--", echo)
	cmd.Env = append(os.Environ(), "PORTCULLIS_API_KEY="+agentKey)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	send := func(s string) {
		t.Helper()
		if _, err := io.WriteString(stdin, s+"\n"); err != nil {
			t.Fatalf("write: %v\n%s", err, stderr.String())
		}
	}
	// next returns the next line containing want.
	next := func(want string) string {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("wrapper exited waiting for %q\n%s", want, stderr.String())
				}
				if strings.Contains(l, want) {
					return l
				}
			case <-timeout:
				t.Fatalf("no answer containing %q\n%s", want, stderr.String())
			}
		}
	}
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	next(`"id":1`)
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	send(`{not json`)
	if l := next(`-32700`); !strings.Contains(l, "parse error") {
		t.Errorf("malformed JSON: %s", l)
	}
	send(`{"jsonrpc":"2.0","id":2,"method":"frobnicate","params":{}}`)
	if l := next(`"id":2`); !strings.Contains(l, "-32601") {
		t.Errorf("unknown method: %s", l)
	}
	send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"e__echo","arguments":{"text":"` + strings.Repeat("x", 2<<20) + `"}}}`)
	// Answered with its id, so the client matches the error rather than waiting for its timeout.
	if l := next(`-32600`); !strings.Contains(l, "exceeds") || !strings.Contains(l, `"id":3,`) {
		t.Errorf("oversized message: %s", l)
	}
	// The TypeScript SDK writes the id last, after the params that make the line too long.
	send(`{"method":"tools/call","params":{"name":"e__echo","arguments":{"id":1,"text":"` + strings.Repeat("x", 2<<20) + `"}},"jsonrpc":"2.0","id":"ts-5"}`)
	if l := next(`-32600`); !strings.Contains(l, "exceeds") || !strings.Contains(l, `"id":"ts-5",`) {
		t.Errorf("oversized message, id last: %s", l)
	}
	send(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"e__echo","arguments":{"text":"still here"}}}`)
	if l := next(`"id":4`); !strings.Contains(l, "still here") || strings.Contains(l, `"isError":true`) {
		t.Errorf("call after bad input: %s", l)
	}
	// The server never sees the agent's Portcullis credential.
	send(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"e__env","arguments":{"text":"PORTCULLIS_API_KEY"}}}`)
	if l := next(`"id":7`); !strings.Contains(l, `value=\"`) && !strings.Contains(l, `"value="`) || strings.Contains(l, "pcl_") {
		t.Errorf("upstream environment: %s", l)
	}
	send(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"e__die","arguments":{"text":"x"}}}`)
	if l := next(`"id":5`); !strings.Contains(l, `"isError":true`) || !strings.Contains(l, "the tool failed") {
		t.Errorf("upstream died mid-call: %s", l)
	}
	// The wrapper restarts the server (and re-pins its tools): a later call works again.
	restarted := false
	for i := 0; i < 5 && !restarted; i++ {
		id := strconv.Itoa(100 + i)
		send(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"e__echo","arguments":{"text":"back"}}}`)
		l := next(`"id":` + id)
		restarted = strings.Contains(l, "back") && !strings.Contains(l, `"isError":true`)
		if !restarted {
			time.Sleep(1100 * time.Millisecond)
		}
	}
	if !restarted {
		t.Errorf("the upstream was not restarted after it died\n%s", stderr.String())
	}
	stdin.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("wrapper exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("wrapper did not exit when stdin closed\n%s", stderr.String())
	}
	auditVerify(t, dir)
}

// tsResult is one tool call's answer as e2e/ts-client.mjs saw it.
type tsResult struct {
	IsError bool
	Text    string
}

// tsEverything is what e2e/ts-client.mjs saw.
type tsEverything struct {
	SamplingRequests    int
	ElicitationRequests int
	Tools               []string
	Echo, GetEnv        struct {
		IsError bool
		Text    string
	}
	Sampling, Elicitation tsResult
	Resources             int
	ResourceRead          int
	Prompts               []string
}

// runTSClientEverything runs the official TypeScript SDK client (e2e/ts-client.mjs), which
// launches the stdio wrapper in front of @modelcontextprotocol/server-everything, with policy.
func runTSClientEverything(t *testing.T, policy, config string) (tsEverything, string) {
	t.Helper()
	filesystemServer(t) // skips when node_modules is absent
	everything, err := filepath.Abs("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	if err != nil {
		t.Fatal(err)
	}
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, policy)
	if config != "" {
		appendConfig(t, dir, config)
	}
	cmd := exec.Command("node", "ts-client.mjs", binary(t), "mcp", "--data", dir, "--", "node", everything, "stdio")
	cmd.Env = append(os.Environ(), "PORTCULLIS_API_KEY="+agentKey)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ts client: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var got tsEverything
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("ts client output: %v\n%s", err, stdout.String())
	}
	return got, dir
}

const everythingPolicy = `agent_id: report-generator-v1
default_action: DENY
rules:
  - name: harmless
    tool: "echo|get-sum|trigger-sampling-request"
    action: ALLOW
  - name: static_resources
    tool: mcp.resources.read
    action: ALLOW
    conditions:
      - parameter: uri
        match: "^demo://resource/static/"
`

// TestMCPTypeScriptClientEverything: the official TypeScript SDK client (e2e/ts-client.mjs)
// launches the stdio wrapper in front of @modelcontextprotocol/server-everything.
func TestMCPTypeScriptClientEverything(t *testing.T) {
	got, dir := runTSClientEverything(t, everythingPolicy, "")
	// trigger-sampling-request is allowed by policy, but the gateway offers the upstream no
	// sampling capability, so the server does not even register it and nothing reaches the client.
	if diff := cmpDiff([]string{"echo", "get-sum"}, got.Tools); diff != "" {
		t.Errorf("tools/list (-want +got):\n%s", diff)
	}
	if got.Echo.IsError || !strings.Contains(got.Echo.Text, "hello through the gate") {
		t.Errorf("echo: %+v", got.Echo)
	}
	if !got.GetEnv.IsError || strings.Contains(got.GetEnv.Text, "PATH") {
		t.Errorf("get-env was forwarded: %+v", got.GetEnv)
	}
	if !got.Sampling.IsError || got.SamplingRequests != 0 {
		t.Errorf("sampling reached the client: %+v, %d requests", got.Sampling, got.SamplingRequests)
	}
	if !got.Elicitation.IsError || got.ElicitationRequests != 0 {
		t.Errorf("elicitation reached the client: %+v, %d requests", got.Elicitation, got.ElicitationRequests)
	}
	if got.Resources == 0 || got.ResourceRead != 1 {
		t.Errorf("resources: listed %d, read %d contents", got.Resources, got.ResourceRead)
	}
	if len(got.Prompts) != 0 {
		t.Errorf("prompts listed though mcp.prompts.get is never allowed: %v", got.Prompts)
	}
	auditVerify(t, dir)
}

// TestMCPTypeScriptClientServerRequests: with mcp.server_requests.sampling (or .elicitation):
// allow, the wrapper offers server-everything that capability; its trigger tool's request reaches
// the TypeScript client's model (or user) only when the policy allows the reserved tool, the
// server gets the answer, and the decision is in the ledger.
func TestMCPTypeScriptClientServerRequests(t *testing.T) {
	sampling := func(g tsEverything) (int, tsResult) { return g.SamplingRequests, g.Sampling }
	elicitation := func(g tsEverything) (int, tsResult) { return g.ElicitationRequests, g.Elicitation }
	for _, tc := range []struct {
		name, config, trigger, reserved, rule, answer string
		want                                          int // requests the client gets
		seen                                          func(tsEverything) (int, tsResult)
	}{
		{"sampling allowed", "sampling", "trigger-sampling-request", "mcp.sampling.createMessage",
			"  - name: sampling\n    tool: mcp.sampling.createMessage\n    action: ALLOW\n", "sampled", 1, sampling},
		{"sampling denied by the policy", "sampling", "trigger-sampling-request", "mcp.sampling.createMessage",
			"", "sampled", 0, sampling},
		{"elicitation allowed", "elicitation", "trigger-elicitation-request", "mcp.elicitation.create",
			"  - name: elicitation\n    tool: \"mcp.elicitation.create|trigger-elicitation-request\"\n    action: ALLOW\n",
			"provided the requested information", 1, elicitation},
		{"elicitation denied by the policy", "elicitation", "trigger-elicitation-request", "mcp.elicitation.create",
			"  - name: trigger\n    tool: trigger-elicitation-request\n    action: ALLOW\n",
			"provided the requested information", 0, elicitation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, dir := runTSClientEverything(t, everythingPolicy+tc.rule, "mcp:\n  server_requests:\n    "+tc.config+": allow\n")
			if !slices.Contains(got.Tools, tc.trigger) {
				t.Fatalf("the server did not see the %s capability: tools %v", tc.config, got.Tools)
			}
			n, res := tc.seen(got)
			if n != tc.want || res.IsError != (tc.want == 0) {
				t.Errorf("%s: %+v, %d requests reached the client, want %d", tc.config, res, n, tc.want)
			}
			if answered := strings.Contains(res.Text, tc.answer); answered != (tc.want == 1) {
				t.Errorf("%s: the server's view of the client's answer: %q (want answered: %v)", tc.config, res.Text, tc.want == 1)
			}
			code, out, _ := cli(t, nil, "audit", "search", "--data", dir, "--tool", tc.reserved)
			if code != 0 || !strings.Contains(out, tc.reserved) {
				t.Errorf("audit search lacks the %s decision (exit %d): %.500s", tc.reserved, code, out)
			}
			auditVerify(t, dir)
		})
	}
}

// TestMCPRemoteUpstream: server-everything as a remote Streamable HTTP server behind `serve`'s
// /mcp, and `portcullis inventory --url` against it.
func TestMCPRemoteUpstream(t *testing.T) {
	url := startEverythingHTTP(t)

	code, out, stderr := cli(t, nil, "inventory", "--url", url, "--prefix", "ev__")
	if code != 0 || !strings.Contains(out, "ev__echo") || !strings.Contains(out, "default_action: DENY") {
		t.Fatalf("inventory --url: %d %s %s", code, out, stderr)
	}
	// get-env dumps the environment; the server annotates it read-only, but its name says what
	// it reads, so it is not ranked low (and is not ALLOWed by the starter policy).
	if !regexp.MustCompile(`(?m)^high\s+ev__get-env\b`).MatchString(out) || strings.Contains(out, "read_ev__get-env") {
		t.Errorf("inventory ranks get-env:\n%s", out)
	}

	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, `agent_id: report-generator-v1
default_action: DENY
rules:
  - name: echo
    tool: ev__echo
    action: ALLOW
`)
	appendConfig(t, dir, "mcp:\n  upstreams:\n    - name: ev\n      url: "+url+"\n")
	code, out, stderr = cli(t, nil, "inventory", "--upstream", "ev", "--data", dir)
	if code != 0 || !strings.Contains(out, "ev__echo") {
		t.Fatalf("inventory --upstream: %d %s %s", code, out, stderr)
	}
	// A sole unnamed upstream is chosen with --upstream "", and its tools keep their names.
	unnamed, _, _ := initData(t)
	appendConfig(t, unnamed, "mcp:\n  upstreams:\n    - url: "+url+"\n")
	code, out, stderr = cli(t, nil, "inventory", "--upstream", "", "--data", unnamed)
	if code != 0 || !strings.Contains(out, "echo") || strings.Contains(out, "__echo") {
		t.Fatalf("inventory --upstream \"\": %d %s %s", code, out, stderr)
	}
	d := startServe(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := httpClient(t, ctx, d.url, agentKey)
	if diff := cmpDiff([]string{"ev__echo"}, toolNames(t, ctx, cs)); diff != "" {
		t.Errorf("tools/list (-want +got):\n%s", diff)
	}
	if r := call(t, ctx, cs, "ev__echo", map[string]any{"message": "over http"}); r.IsError || !strings.Contains(text(r), "over http") {
		t.Errorf("echo: %q", text(r))
	}
	if r := call(t, ctx, cs, "ev__get-env", map[string]any{}); !r.IsError || strings.Contains(text(r), "PATH") {
		t.Errorf("get-env: %q", text(r))
	}
	cs.Close()
	d.stop(t)
	auditVerify(t, dir)
}

// lockedBuffer is a bytes.Buffer safe for a child's stderr and a test reading it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// echoHeldPolicy holds every call of the echo server's echo tool (namespaced e) for approval.
const echoHeldPolicy = `agent_id: report-generator-v1
default_action: DENY
rules:
  - name: echo_with_approval
    tool: e__echo
    action: CONSTRAIN
    enforcement: require_human_approval
`

// connectEchoWrapper runs `portcullis mcp --data dir --name e [flags] -- ECHO` with env added to
// the environment, and connects an MCP client to it over stdio.
func connectEchoWrapper(t *testing.T, ctx context.Context, dir string, flags []string, env ...string) (*mcp.ClientSession, *lockedBuffer) {
	t.Helper()
	args := append(append([]string{"mcp", "--data", dir, "--name", "e"}, flags...), "--", echoServer(t))
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, stderr.String())
	}
	return cs, stderr
}

// TestMCPStdioWrapperApproval: the stdio wrapper with --listen holds a CONSTRAIN call; an
// approver approves it with the CLI against the wrapper's own HTTP API; the retry runs once.
func TestMCPStdioWrapperApproval(t *testing.T) {
	dir, agentKey, approverKey := initData(t)
	writePolicy(t, dir, echoHeldPolicy)
	appendConfig(t, dir, "mcp:\n  approval_wait: 500ms\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, stderr := connectEchoWrapper(t, ctx, dir, []string{"--listen", "127.0.0.1:0"}, "PORTCULLIS_API_KEY="+agentKey)
	// The wrapper prints its listen address on stderr; the MCP handshake can finish first.
	var m []string
	for deadline := time.Now().Add(10 * time.Second); m == nil; time.Sleep(20 * time.Millisecond) {
		if m = listenRe.FindStringSubmatch(stderr.String()); m == nil && time.Now().After(deadline) {
			t.Fatalf("no listen address on stderr:\n%s", stderr.String())
		}
	}
	args := map[string]any{"text": "needs a human"}
	held := call(t, ctx, cs, "e__echo", args)
	id := approvalRe.FindString(text(held))
	if !held.IsError || id == "" {
		t.Fatalf("not held: %q", text(held))
	}
	env := []string{"PORTCULLIS_URL=" + m[1], "PORTCULLIS_APPROVER_KEY=" + approverKey}
	if code, out, errOut := cli(t, env, "approvals", "approve", id); code != 0 {
		t.Fatalf("approvals approve: %d %s %s", code, out, errOut)
	}
	args[`_portcullis_approval_id`] = id
	if r := call(t, ctx, cs, "e__echo", args); r.IsError || !strings.Contains(text(r), "needs a human") {
		t.Fatalf("approved call: %q", text(r))
	}
	// Replayed: refused, and the agent is told why (not "the tool is unavailable").
	if r := call(t, ctx, cs, "e__echo", args); !r.IsError || !strings.Contains(text(r), "approval "+id+" cannot be used") {
		t.Fatalf("grant used twice: %q", text(r))
	}
	if err := cs.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	auditVerify(t, dir)
}

// TestMCPHTTPRobustness: /mcp in `serve` faced with malformed JSON-RPC, an unknown method, an
// oversized message, an upstream that hangs and one that dies mid-call — each answered with a
// clear error, nothing forwarded that was not allowed, and the session goes on.
func TestMCPHTTPRobustness(t *testing.T) {
	echo := echoServer(t)
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, `agent_id: report-generator-v1
default_action: DENY
rules:
  - name: echo
    tool: "pin__(echo|hang|die)"
    action: ALLOW
`)
	appendConfig(t, dir, "mcp:\n  call_timeout: 1s\n  upstreams:\n    - name: pin\n      command: \""+echo+"\"\n")
	d := startServe(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := httpClient(t, ctx, d.url, agentKey)

	// Raw messages on the client's session.
	post := func(body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.url+"/mcp", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+agentKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Session-Id", cs.ID())
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		return do(t, req)
	}
	if code, body := post(`{"jsonrpc":"2.0","id":2,"method":`); code != http.StatusBadRequest {
		t.Errorf("malformed JSON: %d %s", code, body)
	}
	// The SDK's Streamable HTTP handler refuses a method it does not know before any session
	// code runs: 400 naming the method (the stdio wrapper answers -32601).
	if code, body := post(`{"jsonrpc":"2.0","id":3,"method":"no/such/method"}`); code != http.StatusBadRequest || !strings.Contains(body, "no/such/method") {
		t.Errorf("unknown method: %d %s", code, body)
	}
	huge := `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"pin__echo","arguments":{"text":"` + strings.Repeat("A", 2<<20) + `"}}}`
	if code, body := post(huge); code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MB message (limits.max_body_bytes is 1 MiB): %d %.200s", code, body)
	}
	// A hung upstream call ends with an error after call_timeout; one that kills the upstream
	// ends with an error too, and the next call restarts it.
	if r := call(t, ctx, cs, "pin__hang", map[string]any{"text": ""}); !r.IsError || !strings.Contains(text(r), "failed") {
		t.Errorf("hung upstream: %+v %q", r.IsError, text(r))
	}
	if r := call(t, ctx, cs, "pin__die", map[string]any{"text": ""}); !r.IsError {
		t.Errorf("upstream died mid-call: %q", text(r))
	}
	var r *mcp.CallToolResult
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		// The restart is rate-limited (once a second): retry until it is back.
		if r = call(t, ctx, cs, "pin__echo", map[string]any{"text": "still here"}); !r.IsError {
			break
		}
	}
	if r.IsError || !strings.Contains(text(r), "still here") {
		t.Errorf("the session did not go on: %q", text(r))
	}
	cs.Close()
	d.stop(t)
	auditVerify(t, dir)
	// The oversized message never reached a decision, let alone the upstream.
	if code, out, _ := cli(t, nil, "audit", "search", "--data", dir, "--tool", "pin__echo"); code != 0 || strings.Contains(out, "AAAA") {
		t.Errorf("audit search (exit %d) shows the oversized message: %.300s", code, out)
	}
}

// TestMCPStdioWrapperRefusesRepeatedKeys: tool arguments that name a key twice are refused with
// JSON-RPC invalid params by `portcullis mcp -- CMD`, and never reach the server. Otherwise the
// policy decides on one reading (Go keeps the last of two keys) and a server that keeps the
// first — like the "first" tool here — runs on the other.
func TestMCPStdioWrapperRefusesRepeatedKeys(t *testing.T) {
	echo := echoServer(t)
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, `agent_id: report-generator-v1
default_action: DENY
rules:
  - name: only_safe_text
    tool: "e__first"
    action: ALLOW
    conditions:
      - parameter: text
        match: "^safe$"
`)
	cmd := exec.Command(binary(t), "mcp", "--data", dir, "--name", "e", "--", echo)
	cmd.Env = append(os.Environ(), "PORTCULLIS_API_KEY="+agentKey)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	send := func(s string) {
		t.Helper()
		if _, err := io.WriteString(stdin, s+"\n"); err != nil {
			t.Fatalf("write: %v\n%s", err, stderr.String())
		}
	}
	next := func(want string) string {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("wrapper exited waiting for %q\n%s", want, stderr.String())
				}
				if strings.Contains(l, want) {
					return l
				}
			case <-timeout:
				t.Fatalf("no answer containing %q\n%s", want, stderr.String())
			}
		}
	}
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	next(`"id":1`)
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"e__first","arguments":{"text":"safe"}}}`)
	if l := next(`"id":2`); !strings.Contains(l, `"text":"safe"`) || strings.Contains(l, `"isError":true`) {
		t.Fatalf("a plain allowed call: %s", l)
	}
	for i, args := range []string{
		`{"text":"evil","text":"safe"}`,
		`{"text":"evil","TEXT":"safe"}`,
		`{"TEXT":"evil","text":"safe"}`,
		`{"text":"safe","nested":{"a":[{"k":1,"k":2}]}}`,
	} {
		id := strconv.Itoa(10 + i)
		send(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"e__first","arguments":` + args + `}}`)
		l := next(`"id":` + id)
		if strings.Contains(l, "evil") && !strings.Contains(l, `"error"`) {
			t.Errorf("%s: the server ran on the other reading: %s", args, l)
		}
		if !strings.Contains(l, `"code":-32602`) || !strings.Contains(l, "duplicate key") {
			t.Errorf("%s: %s; want a JSON-RPC invalid params error naming the duplicate key", args, l)
		}
	}
	// The wrapper still serves afterwards.
	send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"e__first","arguments":{"text":"safe"}}}`)
	if l := next(`"id":3`); !strings.Contains(l, `"text":"safe"`) {
		t.Errorf("call after refused ones: %s", l)
	}
	stdin.Close()
	for range lines {
	}
	_ = cmd.Wait()
	auditVerify(t, dir)
}
