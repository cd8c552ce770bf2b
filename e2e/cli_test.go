package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCLIConsistency drives the real binary as a new user does: the version, help for every
// command with exit 0, help CMD, a mistyped command, shell completion that bash accepts.
func TestCLIConsistency(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, _ := cli(t, nil, args...)
		if code != 0 || !regexp.MustCompile(`^portcullis \S+ \(commit \S+, built \S+, go1\.\d+`).MatchString(out) {
			t.Errorf("%v: exit %d\n%s", args, code, out)
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}, {"serve", "-h"}, {"serve", "--help"}, {"help", "serve"},
		{"policy", "eval", "-h"}, {"help", "policy", "eval"}, {"audit", "search", "--help"}, {"approvals", "show", "-h"}, {"config", "check", "-h"},
		{"keys", "create", "-h"}, {"mcp", "-h"}, {"inspect", "-h"}, {"completion", "-h"}} {
		code, out, errOut := cli(t, nil, args...)
		if code != 0 || !strings.Contains(out, "Usage") || strings.Contains(out, "Usage of") || errOut != "" {
			t.Errorf("%v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
		}
	}
	code, _, errOut := cli(t, nil, "servre")
	if code != 2 || !strings.Contains(errOut, "did you mean 'portcullis serve'?") {
		t.Errorf("mistyped command: exit %d\n%s", code, errOut)
	}
	code, out, _ := cli(t, nil, "completion", "bash")
	if code != 0 || !strings.Contains(out, "complete -F _portcullis portcullis") {
		t.Fatalf("completion bash: exit %d\n%s", code, out)
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		script := filepath.Join(t.TempDir(), "portcullis.bash")
		if err := os.WriteFile(script, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		// The script loads, and completes "portcullis pol" and "portcullis audit ta".
		check := `source ` + script + `
COMP_WORDS=(portcullis pol); COMP_CWORD=1; _portcullis; echo "${COMPREPLY[*]}"
COMP_WORDS=(portcullis audit ta); COMP_CWORD=2; _portcullis; echo "${COMPREPLY[*]}"`
		got, err := exec.Command(bash, "-c", check).CombinedOutput()
		if err != nil || string(got) != "policy\ntail\n" {
			t.Errorf("bash completion: %v\n%s", err, got)
		}
	}
}
