package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/sdk"
)

// snapshot is every file under dir: name, mode, size, mtime and content hash.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		sum := ""
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		m[p] = fmt.Sprintf("%v %d %s %s", info.Mode(), info.Size(), info.ModTime().Format(time.RFC3339Nano), sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAuditReadsLedgerCopies is the auditor's workflow from docs/deployment.md: verify (and
// export, tail, search, prove) a copy of the data directory — one made with cp while the gateway
// ran, and one the auditor cannot write (files 0444 in a 0555 directory). The audit commands
// must read both and create or modify nothing in them (tests run as root, where the mode bits
// do not bite, so the directory is compared before and after).
func TestAuditReadsLedgerCopies(t *testing.T) {
	dir, agentKey, _ := initData(t)
	d := startServe(t, dir)
	agent := sdk.New(d.url, sdk.WithAPIKey(agentKey), sdk.WithAgentID(app.DemoAgent))
	for range 3 {
		if _, err := agent.Decide(context.Background(), sdk.DecideRequest{Tool: "fetch_customer_names", Params: map[string]any{"limit": 1}}); err != nil {
			t.Fatal(err)
		}
	}

	live := filepath.Join(t.TempDir(), "live-copy")
	if out, err := exec.Command("cp", "-a", dir, live).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	d.stop(t)
	ro := filepath.Join(t.TempDir(), "ro-copy")
	if out, err := exec.Command("cp", "-a", dir, ro).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	_ = filepath.WalkDir(ro, func(p string, e fs.DirEntry, _ error) error {
		if e.IsDir() {
			return os.Chmod(p, 0o555)
		}
		return os.Chmod(p, 0o444)
	})
	t.Cleanup(func() {
		_ = filepath.WalkDir(ro, func(p string, e fs.DirEntry, _ error) error {
			if e.IsDir() {
				return os.Chmod(p, 0o755)
			}
			return nil
		})
	})

	for _, c := range []string{live, ro} {
		before := snapshot(t, c)
		for _, args := range [][]string{
			{"audit", "verify", "--data", c},
			{"audit", "export", "--data", c},
			{"audit", "tail", "--data", c, "-n", "3"},
			{"audit", "search", "--data", c, "--kind", "startup"},
			{"audit", "prove", "--data", c, "--seq", "0"},
			{"audit", "consistency", "--data", c, "--old", "1"},
			{"audit", "checkpoint", "--data", c},
			{"audit", "hash", "--data", c, "value"},
		} {
			if code, out, stderr := cli(t, nil, args...); code != 0 {
				t.Errorf("%v: exit %d\n%s%s", args, code, out, stderr)
			}
		}
		after := snapshot(t, c)
		for p, s := range after {
			if before[p] != s {
				t.Errorf("%s: %s was %q, now %q", filepath.Base(c), p, before[p], s)
			}
		}
		for p := range before {
			if _, ok := after[p]; !ok {
				t.Errorf("%s: %s was removed", filepath.Base(c), p)
			}
		}
	}
}
