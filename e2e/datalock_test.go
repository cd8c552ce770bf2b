package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// cliWithin is cli for a command that must end by itself: one that starts when it should have
// been refused is killed after d instead of hanging the test.
func cliWithin(t *testing.T, d time.Duration, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		return -1, "still running after " + d.String() + "\n" + errb.String()
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), errb.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, errb.String()
}

// TestDataDirOneWriter runs a second gateway — the stdio wrapper and another serve, both of which
// default to ./portcullis-data — on a directory a gateway is using: each is refused with the pid
// that holds it, the ledger is left alone (no recovery, no shutdown that never happened), and the
// read-only audit commands still run beside the live gateway.
func TestDataDirOneWriter(t *testing.T) {
	dir, key, _ := initData(t)
	d := startServe(t, dir)
	want := fmt.Sprintf("data directory in use by pid %d; use a separate --data", d.cmd.Process.Pid)

	for _, args := range [][]string{
		{"mcp", "--data", dir, "--", "true"},
		{"serve", "--data", dir, "--listen", "127.0.0.1:0"},
	} {
		code, stderr := cliWithin(t, 15*time.Second, []string{"PORTCULLIS_API_KEY=" + key}, args...)
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%s beside a live gateway: exit %d, want 1 and %q\n%s", args[0], code, want, stderr)
		}
	}
	for _, args := range [][]string{
		{"audit", "tail", "--data", dir, "-n", "5"},
		{"audit", "export", "--data", dir},
		{"audit", "search", "--data", dir, "--kind", "startup"},
	} {
		if code, _, stderr := cli(t, nil, args...); code != 0 {
			t.Errorf("%v beside a live gateway: exit %d\n%s", args, code, stderr)
		}
	}
	d.stop(t)

	startServe(t, dir).stop(t)
	code, out, stderr := cli(t, nil, "audit", "export", "--data", dir)
	if code != 0 {
		t.Fatalf("audit export: %d %s", code, stderr)
	}
	if n := strings.Count(out, `"kind":"startup"`); n != 2 {
		t.Errorf("%d startup records, want 2 (the refused processes must write nothing)", n)
	}
	if n := strings.Count(out, `"kind":"shutdown"`); n != 2 {
		t.Errorf("%d shutdown records, want 2", n)
	}
	if strings.Contains(out, `"kind":"recovery"`) {
		t.Errorf("the ledger recorded a recovery:\n%s", out)
	}
	if code, out, stderr := cli(t, nil, "audit", "verify", "--data", dir); code != 0 {
		t.Errorf("audit verify: %d\n%s%s", code, out, stderr)
	}
}
