// Package e2e drives the real portcullis binary with real clients: the Go SDK over HTTP and the
// command line, as an operator and an approver would.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/sdk"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/portcullis once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "portcullis-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "portcullis")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/portcullis").CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build portcullis: %v\n%s", buildErr, binPath)
	}
	return binPath
}

// daemon is a running `portcullis serve`.
type daemon struct {
	cmd    *exec.Cmd
	url    string
	stderr *lockedBuffer // written by the child's copier while a test reads it
	done   chan error

	mu     sync.Mutex
	stdout []string // the lines serve printed to stdout
}

// printed is what serve wrote to stdout before it listened, e.g. the demo agent's key.
func (d *daemon) printed() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.stdout, "\n")
}

var listenRe = regexp.MustCompile(`listening on (http://\S+)`)

func startServe(t *testing.T, dataDir string) *daemon {
	t.Helper()
	return startServeEnv(t, dataDir, nil)
}

// startServeEnv is startServe with env added to the gateway's environment.
func startServeEnv(t *testing.T, dataDir string, env []string) *daemon {
	t.Helper()
	return startServeAt(t, dataDir, "127.0.0.1:0", env)
}

// startServeAt is startServeEnv listening on addr.
func startServeAt(t *testing.T, dataDir, addr string, env []string) *daemon {
	t.Helper()
	cmd := exec.Command(binary(t), "serve", "--data", dataDir, "--listen", addr)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.mu.Lock()
			d.stdout = append(d.stdout, sc.Text())
			d.mu.Unlock()
			if m := listenRe.FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1]
			}
		}
	}()
	go func() { d.done <- cmd.Wait() }()
	select {
	case d.url = <-urlc:
	case err := <-d.done:
		t.Fatalf("serve exited early: %v\n%s", err, d.stderr)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("serve did not start\n%s", d.stderr)
	}
	t.Cleanup(func() { d.stop(t) })
	return d
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("serve exited with %v\n%s", err, d.stderr)
		}
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		t.Errorf("serve did not stop on SIGTERM\n%s", d.stderr)
	}
}

// cli runs a portcullis command and returns its exit code and output.
func cli(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// initData makes an embedded-default data directory with an approver, alice, and her key.
func initData(t *testing.T) (dir, agentKey, approverKey string) {
	t.Helper()
	dir = t.TempDir()
	cfgPath, agentKey, err := app.Init(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(cfgPath)
	// alice joins the default's demo approver.
	edited := bytes.Replace(cfg, []byte("  approvers:\n"), []byte("  approvers:\n    - id: alice\n      scopes:\n        - agents: [\".*\"]\n          tools: [\".*\"]\n"), 1)
	if bytes.Equal(edited, cfg) {
		t.Fatal("the default configuration has no approvals.approvers list to add alice to")
	}
	cfg = edited
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := cli(t, nil, "approvals", "keys", "create", "--approver", "alice", "--data", dir)
	if code != 0 {
		t.Fatalf("approvals keys create: %d %s", code, stderr)
	}
	return dir, agentKey, strings.TrimSpace(out)
}

func TestServeDecideApproveExecuteOnce(t *testing.T) {
	dir, agentKey, approverKey := initData(t)
	d := startServe(t, dir)
	ctx := context.Background()
	agent := sdk.New(d.url, sdk.WithAPIKey(agentKey), sdk.WithAgentID(app.DemoAgent))

	// An allowed call, its outcome inspected on the way back.
	dec, err := agent.Decide(ctx, sdk.DecideRequest{Tool: "fetch_customer_names", Params: map[string]any{"limit": 10}})
	if err != nil || !dec.Allowed() {
		t.Fatalf("allowed call: %+v, %v", dec, err)
	}
	res, err := agent.Outcome(ctx, sdk.OutcomeRequest{DecisionID: dec.DecisionID, Ran: true, Success: true, Result: map[string]any{"names": []string{"Ada"}}})
	if err != nil || res.Action != "pass" {
		t.Fatalf("outcome: %+v, %v", res, err)
	}

	// A call the policy never permits.
	if dec, err := agent.Decide(ctx, sdk.DecideRequest{Tool: "delete_file", Params: map[string]any{"path": "/reports/q1.pdf"}}); err != nil || dec.Decision != sdk.Deny {
		t.Fatalf("delete_file: %+v, %v", dec, err)
	}

	// A high-threat call on an allowed tool is held for approval.
	risky := sdk.DecideRequest{Tool: "fetch_customer_names", Params: map[string]any{"limit": 10, "filter": "x' UNION SELECT card_number FROM payments --"}}
	held, err := agent.Decide(ctx, risky)
	if err != nil || !held.Pending() || held.ApprovalID == "" {
		t.Fatalf("risky call: %+v, %v", held, err)
	}

	// The agent's own key cannot approve.
	if code, _, stderr := cli(t, []string{"PORTCULLIS_URL=" + d.url, "PORTCULLIS_APPROVER_KEY=" + agentKey}, "approvals", "approve", held.ApprovalID); code == 0 {
		t.Fatalf("an agent key approved a request: %s", stderr)
	}
	approverEnv := []string{"PORTCULLIS_URL=" + d.url, "PORTCULLIS_APPROVER_KEY=" + approverKey}
	if code, out, stderr := cli(t, approverEnv, "approvals", "list"); code != 0 || !strings.Contains(out, held.ApprovalID) {
		t.Fatalf("approvals list: %d %q %s", code, out, stderr)
	}
	if code, out, stderr := cli(t, approverEnv, "approvals", "approve", held.ApprovalID, "--comment", "checked with the customer"); code != 0 || !strings.Contains(out, "approved") {
		t.Fatalf("approvals approve: %d %q %s", code, out, stderr)
	}

	// The approved call runs exactly once.
	risky.ApprovalID = held.ApprovalID
	run, err := agent.Decide(ctx, risky)
	if err != nil || !run.Allowed() {
		t.Fatalf("approved call: %+v, %v", run, err)
	}
	again, err := agent.Decide(ctx, risky)
	if err != nil || again.Allowed() {
		t.Fatalf("second use of the grant: %+v, %v", again, err)
	}

	// Every step is in the ledger, and the ledger verifies after a clean shutdown.
	d.stop(t)
	code, out, stderr := cli(t, nil, "audit", "verify", "--data", dir)
	if code != 0 || !strings.Contains(out, `"intact": true`) {
		t.Fatalf("audit verify: %d %s %s", code, out, stderr)
	}
	code, out, _ = cli(t, nil, "audit", "search", "--data", dir, "--tool", "fetch_customer_names")
	for _, id := range []string{dec.DecisionID, held.DecisionID, run.DecisionID, again.DecisionID} {
		if code != 0 || !strings.Contains(out, id) {
			t.Errorf("audit search lacks decision %s (exit %d)", id, code)
		}
	}
}

func TestPendingApprovalSurvivesRestart(t *testing.T) {
	dir, agentKey, approverKey := initData(t)
	ctx := context.Background()
	risky := sdk.DecideRequest{Tool: "fetch_customer_names", Params: map[string]any{"limit": 1, "filter": "1; DROP TABLE customers; --"}}

	d := startServe(t, dir)
	held, err := sdk.New(d.url, sdk.WithAPIKey(agentKey)).Decide(ctx, risky)
	if err != nil || !held.Pending() {
		t.Fatalf("risky call: %+v, %v", held, err)
	}
	d.stop(t)

	d2 := startServe(t, dir)
	approverEnv := []string{"PORTCULLIS_URL=" + d2.url, "PORTCULLIS_APPROVER_KEY=" + approverKey}
	if code, _, stderr := cli(t, approverEnv, "approvals", "approve", held.ApprovalID); code != 0 {
		t.Fatalf("approve after restart: %d %s", code, stderr)
	}
	risky.ApprovalID = held.ApprovalID
	risky.WaitSeconds = 5
	run, err := sdk.New(d2.url, sdk.WithAPIKey(agentKey)).Decide(ctx, risky)
	if err != nil || !run.Allowed() {
		t.Fatalf("approved call after restart: %+v, %v", run, err)
	}
}
