package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// TestStartFailuresExitCleanly feeds the real binary each start-up failure a new user meets and
// checks the answer is exit 1 with one line naming the cause — never a Go stack trace — and that
// the ledger was shut down cleanly: the next start writes no recovery record.
func TestStartFailuresExitCleanly(t *testing.T) {
	appendConfig := func(t *testing.T, dir, yaml string) {
		t.Helper()
		p := filepath.Join(dir, "portcullis.yaml")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, append(b, []byte(yaml)...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	restore := func(t *testing.T, dir string) func() {
		p := filepath.Join(dir, "portcullis.yaml")
		orig, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := os.WriteFile(p, orig, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name string
		// setup breaks dir and returns the command line and the undo.
		setup func(t *testing.T, dir, key string) (args, env []string, undo func())
		want  string // in the one problem line
	}{
		// serve starts with an upstream down (TestServeStartsWithUpstreamsDown); the stdio
		// wrapper, whose one upstream is all it serves, refuses to.
		{"stdio wrapper command missing path", func(t *testing.T, dir, key string) ([]string, []string, func()) {
			return []string{"mcp", "--data", dir, "--", "/nonexistent/server"}, []string{"PORTCULLIS_API_KEY=" + key}, func() {}
		}, `mcp: mcp upstream: `},
		{"stdio wrapper command exits at once", func(t *testing.T, dir, key string) ([]string, []string, func()) {
			return []string{"mcp", "--data", dir, "--", "false"}, []string{"PORTCULLIS_API_KEY=" + key}, func() {}
		}, `mcp: mcp upstream: `},
		{"stdio wrapper command typo", func(t *testing.T, dir, key string) ([]string, []string, func()) {
			return []string{"mcp", "--data", dir, "--", "npx-typo", "-y", "x"}, []string{"PORTCULLIS_API_KEY=" + key}, func() {}
		}, `mcp: mcp upstream: exec: "npx-typo": executable file not found in $PATH`},
		{"llm provider key variable unset", func(t *testing.T, dir, _ string) ([]string, []string, func()) {
			undo := restore(t, dir)
			appendConfig(t, dir, "llm:\n  upstreams:\n    responses:\n      base_url: http://127.0.0.1:9/v1\n      api_key_env: PORTCULLIS_E2E_UNSET_KEY\n")
			return []string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}, nil, undo
		}, "llm.upstreams.responses.api_key_env: the environment variable PORTCULLIS_E2E_UNSET_KEY is not set"},
		{"invalid config", func(t *testing.T, dir, _ string) ([]string, []string, func()) {
			undo := restore(t, dir)
			appendConfig(t, dir, "no_such_key: 1\n")
			return []string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}, nil, undo
		}, "no_such_key"},
		{"policy dir missing", func(t *testing.T, dir, _ string) ([]string, []string, func()) {
			pol := filepath.Join(dir, "policies")
			if err := os.Rename(pol, pol+".away"); err != nil {
				t.Fatal(err)
			}
			return []string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}, nil, func() { _ = os.Rename(pol+".away", pol) }
		}, "policies"},
		{"ledger hash key missing", func(t *testing.T, dir, _ string) ([]string, []string, func()) {
			p := filepath.Join(dir, ledger.HashKeyFile)
			if err := os.Rename(p, p+".away"); err != nil {
				t.Fatal(err)
			}
			return []string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}, nil, func() { _ = os.Rename(p+".away", p) }
		}, "ledger keys"},
		{"port in use", func(t *testing.T, dir, _ string) ([]string, []string, func()) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			return []string{"serve", "--data", dir, "--listen", ln.Addr().String()}, nil, func() { ln.Close() }
		}, "address already in use"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, key, _ := initData(t)
			// A first clean run, so the ledger exists and a crash would show as a recovery.
			startServe(t, dir).stop(t)
			args, env, undo := tc.setup(t, dir, key)
			code, _, stderr := cli(t, env, args...)
			undo()
			if code != 1 {
				t.Errorf("exit %d, want 1\n%s", code, stderr)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic:") {
				t.Fatalf("a stack trace reached the user:\n%s", stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr)
			}
			startServe(t, dir).stop(t)
			code, out, errOut := cli(t, nil, "audit", "export", "--data", dir)
			if code != 0 {
				t.Fatalf("audit export: %d %s", code, errOut)
			}
			if strings.Contains(out, `"kind":"recovery"`) {
				t.Errorf("the failed start left the ledger unclosed; the next start recovered:\n%s", out)
			}
		})
	}
}
