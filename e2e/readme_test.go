package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's quick start, run as a new user runs it: a fresh `serve` creates the data directory
// and prints the demo agent's key; every curl and `go run ./cmd/portcullis` line after it runs (the
// commands with the built binary, in the directory holding ./portcullis-data), and what each
// prints is compared with the `# …` lines under it, "..." standing for what differs from run to run
// (IDs, keys, times) and runs of spaces for a table's padding. The held call is approved by the
// demo approver and retried with its approval ID.
func TestReadmeQuickStart(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	steps := quickStartSteps(t, string(readme))

	root := t.TempDir()
	d := startServe(t, filepath.Join(root, "portcullis-data"))
	agentKey := regexp.MustCompile(`pcl_\S+`).FindString(d.printed())
	if agentKey == "" {
		t.Fatalf("serve printed no key on first use:\n%s", d.printed())
	}
	vars := map[string]string{}
	var approvalID, lastOut string
	// fill replaces the README's placeholders with what this run produced.
	fill := func(s string) string {
		if approvalID != "" {
			s = strings.ReplaceAll(s, "apr_...", approvalID)
		}
		return s
	}
	ran := map[string]bool{}
	for _, st := range steps {
		line := st.cmd
		switch {
		case strings.HasPrefix(line, "go run ./cmd/portcullis serve"), line == "make test" || strings.HasPrefix(line, "make test "):
			continue // serve runs above; the tests are this
		case strings.HasPrefix(line, "KEY=pcl_..."):
			vars["KEY"] = agentKey
		case strings.HasPrefix(line, "export "):
			name, value, _ := strings.Cut(strings.Fields(line)[1], "=")
			if value != "pcl_..." {
				t.Fatalf("README line %q: want NAME=pcl_... (the key just printed)", line)
			}
			vars[name] = strings.TrimSpace(lastOut)
		case strings.HasPrefix(line, "go run ./cmd/portcullis "):
			args := strings.Fields(fill(stripComment(strings.TrimPrefix(line, "go run ./cmd/portcullis "))))
			cmd := exec.Command(binary(t), args...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "PORTCULLIS_DATA=", "PORTCULLIS_URL="+d.url)
			for k, v := range vars {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				t.Fatalf("README command %q: %v\n%s%s", line, err, out.String(), errb.String())
			}
			if strings.Contains(errb.String(), "warning") {
				t.Errorf("README command %q warns:\n%s", line, errb.String())
			}
			lastOut = out.String()
			ran[args[0]+" "+args[1]] = true
			if st.want != nil {
				expectOutput(t, line, lastOut, st.want)
			}
		case strings.HasPrefix(line, "PORTCULLIS_API_KEY=$KEY go run ./examples/orchestrator"):
			cmd := exec.Command(goBuild(t, "../examples/orchestrator"))
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "PORTCULLIS_API_KEY="+vars["KEY"], "PORTCULLIS_URL="+d.url)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("README command %q: %v\n%s", line, err, out)
			}
			if st.want == nil {
				t.Fatalf("README line %q shows no output", line)
			}
			expectOutput(t, line, string(out), st.want)
			ran["orchestrator"] = true
		case strings.HasPrefix(line, "curl "):
			m := curlRe.FindStringSubmatch(line)
			if m == nil || !strings.Contains(line, `-H "Authorization: Bearer $KEY"`) {
				t.Fatalf("README curl line not understood: %q", line)
			}
			body := fill(strings.ReplaceAll(m[1], `'"'"'`, `'`)) // undo the shell quoting of a single quote
			req, _ := http.NewRequest(http.MethodPost, d.url+"/v1/decide", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+vars["KEY"])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			lastOut = string(raw)
			var got struct {
				ApprovalID string `json:"approval_id"`
			}
			_ = json.Unmarshal(raw, &got)
			if st.want == nil {
				t.Fatalf("README curl line %q shows no answer", line)
			}
			expectOutput(t, body, lastOut, st.want)
			if got.ApprovalID != "" {
				approvalID = got.ApprovalID
			}
			ran["curl"] = true
		default:
			t.Fatalf("README quick-start line not understood by this test: %q", line)
		}
	}
	// The story the quick start tells: decisions, a held call approved by a person, the ledger.
	for _, c := range []string{"curl", "approvals keys", "approvals list", "approvals approve", "audit verify", "orchestrator"} {
		if !ran[c] {
			t.Errorf("the README quick start no longer runs %q", c)
		}
	}
	if approvalID == "" {
		t.Error("the README quick start holds no call for approval")
	}
}

// The README's curl lines send JSON the way every curl can (`--json` needs curl 7.82 or later).
var curlRe = regexp.MustCompile(`^curl -s -H "Authorization: Bearer \$KEY" -H 'Content-Type: application/json' -d '(.*)' localhost:8080/v1/decide$`)

// step is one command of the quick start and the output the README shows under it (nil: none).
type step struct {
	cmd  string
	want []string
}

// quickStartSteps reads the ```sh blocks of the README's "## Quick start" section.
func quickStartSteps(t *testing.T, readme string) []step {
	t.Helper()
	_, sec, ok := strings.Cut(readme, "\n## Quick start\n")
	if !ok {
		t.Fatal("README has no Quick start section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	var steps []step
	in := false
	for _, line := range strings.Split(sec, "\n") {
		switch {
		case line == "```sh":
			in = true
		case line == "```":
			in = false
		case !in || strings.TrimSpace(line) == "":
		case strings.HasPrefix(line, "# "):
			if len(steps) == 0 {
				t.Fatalf("README output line %q follows no command", line)
			}
			steps[len(steps)-1].want = append(steps[len(steps)-1].want, strings.TrimPrefix(line, "# "))
		default:
			steps = append(steps, step{cmd: stripComment(line)})
		}
	}
	if len(steps) < 8 {
		t.Fatalf("found %d quick-start commands, want at least 8", len(steps))
	}
	return steps
}

// stripComment drops a trailing "   # …" from a shell line (never a '#' inside quotes: the
// README's comments follow at least two spaces).
func stripComment(line string) string {
	if i := strings.Index(line, "  #"); i >= 0 {
		line = line[:i]
	}
	return strings.TrimSpace(line)
}

// expectOutput compares got with the README's lines: exactly, but for "..." (any text) and runs
// of spaces (a table's padding).
func expectOutput(t *testing.T, what, got string, want []string) {
	t.Helper()
	var re strings.Builder
	re.WriteString(`^`)
	for i, w := range want {
		if i > 0 {
			re.WriteString(`\n`)
		}
		for j, part := range strings.Split(w, "...") {
			if j > 0 {
				re.WriteString(`[^"\n]*`) // never across a JSON string's end or a line
			}
			re.WriteString(regexp.MustCompile(` +`).ReplaceAllString(regexp.QuoteMeta(part), ` +`))
		}
	}
	re.WriteString(`$`)
	if !regexp.MustCompile(re.String()).MatchString(strings.TrimRight(got, "\n")) {
		t.Errorf("README %s:\ngot:\n%s\nREADME says:\n%s", what, got, strings.Join(want, "\n"))
	}
}
