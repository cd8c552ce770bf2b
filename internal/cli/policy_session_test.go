package cli

import (
	"strings"
	"testing"
)

// policy eval reads a session state per request ("session") or for every request (--session),
// and the session rule pack holds a sink call once both labels were seen.
func TestPolicyEvalSession(t *testing.T) {
	const pack = "../../examples/policies/session-exfiltration.yaml"
	const base = `{"agent":{"id":"research-assistant"},"time":"2026-11-25T15:00:00Z","tool":"send_email","params":{"to":"x@example.com"}`
	in := strings.Join([]string{
		base + `}`,
		base + `,"session":{"id":"s1","labels":["untrusted","private"],"sources":["fetch_url dec_1","read_file dec_2"]}}`,
		base + `,"session":{"id":"s2","labels":["untrusted"]}}`,
	}, "\n") + "\n"
	code, out, stderr := run(t, in, "policy", "eval", "--policy", pack, "--input", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{`"decision":"ALLOW"`, `"decision":"CONSTRAIN"`, `"decision":"ALLOW"`}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines:\n%s", len(lines), out)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d = %s, want %s", i+1, lines[i], w)
		}
	}
	if !strings.Contains(lines[1], "untrusted (from fetch_url dec_1)") {
		t.Errorf("explanation does not say where the labels came from: %s", lines[1])
	}
	// --session applies to lines without a session of their own.
	code, out, stderr = run(t, base+"}\n"+base+`,"session":{"labels":[]}}`+"\n", "policy", "eval", "--policy", pack, "--session", "untrusted,private", "--input", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"decision":"CONSTRAIN"`) || !strings.Contains(lines[1], `"decision":"ALLOW"`) {
		t.Errorf("--session: %s", out)
	}
	code, _, stderr = run(t, "", "policy", "lint", pack)
	if code != 0 {
		t.Errorf("lint of the rule pack: exit %d: %s", code, stderr)
	}
}
