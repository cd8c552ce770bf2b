package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-ai/portcullis/internal/config"
)

// block is one fenced block of a document: its info string ("yaml", "sh skip-test REASON", …),
// its lines and where it starts.
type block struct {
	file string
	line int
	lang string
	skip string // the reason after skip-test; "" when the block is tested
	body string
}

func (b block) String() string { return b.file + ":" + strconv.Itoa(b.line) + " (```" + b.lang + ")" }

var fenceRe = regexp.MustCompile("^(\\s*)```(\\S*)(.*)$")

// docBlocks returns every fenced block of README.md and docs/*.md.
func docBlocks(t *testing.T) []block {
	t.Helper()
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"../README.md"}, files...)
	var out []block
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		for i := 0; i < len(lines); i++ {
			m := fenceRe.FindStringSubmatch(lines[i])
			if m == nil {
				continue
			}
			indent := m[1]
			b := block{file: strings.TrimPrefix(f, "../"), line: i + 1, lang: m[2]}
			if rest := strings.TrimSpace(m[3]); rest != "" {
				reason, ok := strings.CutPrefix(rest, "skip-test")
				if !ok {
					t.Errorf("%s: unknown info string %q (want LANG or LANG skip-test REASON)", b, rest)
				}
				b.skip = strings.TrimSpace(reason)
				if b.skip == "" {
					t.Errorf("%s: skip-test without a reason", b)
				}
			}
			var body []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				body = append(body, strings.TrimPrefix(lines[i], indent))
			}
			b.body = strings.Join(body, "\n")
			out = append(out, b)
		}
	}
	return out
}

// Every command and configuration block in the README and docs/ is checked against the program,
// so the documentation cannot drift from it:
//
//   - ```yaml: a policy (agent_id, or a list of rules) passes `portcullis policy check`; a
//     configuration fragment loads with the gateway's strict configuration loader (unknown keys,
//     bad values and invalid combinations are errors);
//   - ```json: valid JSON; ```jsonl: one valid JSON value a line;
//   - ```sh: every `portcullis` (or `go run ./cmd/portcullis`) command names a real subcommand
//     and only flags that subcommand has; `go run|test` name packages that exist; `make` names
//     a Makefile target. The README's quick start also runs whole (TestReadmeQuickStart).
//
// A block that cannot be checked here says so in its info string: ```LANG skip-test REASON.
func TestDocsBlocks(t *testing.T) {
	blocks := docBlocks(t)
	bin := binary(t)
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, b := range blocks {
		if b.skip != "" {
			counts["skipped"]++
			t.Logf("%s skipped: %s", b, b.skip)
			continue
		}
		switch b.lang {
		case "yaml":
			counts["yaml"]++
			checkYAMLBlock(t, bin, b)
		case "json":
			counts["json"]++
			if !json.Valid([]byte(b.body)) {
				t.Errorf("%s: not valid JSON:\n%s", b, b.body)
			}
		case "jsonl":
			counts["jsonl"]++
			for _, l := range strings.Split(b.body, "\n") {
				if strings.TrimSpace(l) != "" && !json.Valid([]byte(l)) {
					t.Errorf("%s: line not valid JSON: %s", b, l)
				}
			}
		case "sh":
			counts["sh"]++
			checkShellBlock(t, bin, string(makefile), b)
		}
	}
	t.Logf("checked %v", counts)
	if counts["yaml"] < 10 || counts["sh"] < 10 {
		t.Errorf("checked %v: the documents lost their examples, or this test lost its way", counts)
	}
	if counts["skipped"] > 5 {
		t.Errorf("%d blocks skipped: keep skips few, and make blocks checkable instead", counts["skipped"])
	}
}

// checkYAMLBlock checks one YAML block as a policy, a policy test file or a configuration.
func checkYAMLBlock(t *testing.T, bin string, b block) {
	t.Helper()
	var top any
	if err := yaml.Unmarshal([]byte(b.body), &top); err != nil {
		t.Errorf("%s: not YAML: %v", b, err)
		return
	}
	dir := t.TempDir()
	switch v := top.(type) {
	case []any: // a list of rules, shown on its own
		policy := "agent_id: docs-example\nrules:\n" + indent(b.body, "  ")
		runPolicyCheck(t, bin, dir, b, policy)
	case map[string]any:
		switch {
		case v["agent_id"] != nil:
			runPolicyCheck(t, bin, dir, b, b.body)
		case v["cases"] != nil:
			t.Errorf("%s: a policy test file cannot be checked alone: show the policy it tests in the same block, or mark it skip-test", b)
		default:
			if _, err := config.Parse(b.String(), []byte(b.body)); err != nil {
				t.Errorf("%s: the configuration does not load:\n%v\n%s", b, err, b.body)
			}
		}
	default:
		t.Errorf("%s: neither a policy nor a configuration", b)
	}
}

func indent(s, by string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = by + l
		}
	}
	return strings.Join(lines, "\n")
}

func runPolicyCheck(t *testing.T, bin, dir string, b block, policy string) {
	t.Helper()
	f := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(f, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "policy", "check", f).CombinedOutput()
	if err != nil {
		t.Errorf("%s: portcullis policy check: %v\n%s\n%s", b, err, out, policy)
	}
}

var (
	flagRe  = regexp.MustCompile(`(?:^|[\s\[])(--?[a-z][a-z0-9-]*)`)
	quoteRe = regexp.MustCompile(`'[^']*'|"[^"]*"`)
	wordRe  = regexp.MustCompile(`^[a-z][a-z-]*$`)
)

// checkShellBlock checks each command line of a shell block (lines starting "# " or "$ " are
// output and prompts; a "$ " line is checked as a command).
func checkShellBlock(t *testing.T, bin, makefile string, b block) {
	t.Helper()
	for _, line := range strings.Split(b.body, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "# ") || line == "#" {
			continue
		}
		if strings.HasPrefix(line, "$ ") {
			line = strings.TrimPrefix(line, "$ ")
		} else if strings.HasPrefix(line, "{") {
			continue // output shown under a prompt
		}
		line = stripComment(line)
		// Each command of a pipeline or a list.
		for _, cmd := range regexp.MustCompile(`\s*(?:\||&&|;)\s*`).Split(quoteRe.ReplaceAllString(line, "''"), -1) {
			checkCommand(t, bin, makefile, b, cmd)
		}
	}
}

func checkCommand(t *testing.T, bin, makefile string, b block, cmd string) {
	t.Helper()
	fields := strings.Fields(cmd)
	// Leading NAME=value assignments.
	for len(fields) > 0 && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(fields[0]) {
		fields = fields[1:]
	}
	if len(fields) == 0 {
		return
	}
	switch {
	case fields[0] == "portcullis":
		checkPortcullis(t, bin, b, fields[1:])
	case len(fields) > 2 && fields[0] == "go" && fields[1] == "run" && fields[2] == "./cmd/portcullis":
		checkPortcullis(t, bin, b, fields[3:])
	case fields[0] == "go" && len(fields) > 1 && (fields[1] == "run" || fields[1] == "test"):
		for _, f := range fields[2:] {
			if strings.HasPrefix(f, "./") {
				if _, err := os.Stat(filepath.Join("..", strings.TrimSuffix(f, "/..."))); err != nil {
					t.Errorf("%s: %s names %s, which does not exist", b, strings.Join(fields[:2], " "), f)
				}
			}
		}
	case fields[0] == "make":
		for _, target := range fields[1:] {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).MatchString(makefile) {
				t.Errorf("%s: make %s: no such Makefile target", b, target)
			}
		}
	}
}

// checkPortcullis checks that args start with a real subcommand and use only its flags.
func checkPortcullis(t *testing.T, bin string, b block, args []string) {
	t.Helper()
	var words []string
	for _, a := range args {
		if !wordRe.MatchString(a) || len(words) == 3 {
			break
		}
		words = append(words, a)
	}
	if len(words) == 0 {
		t.Errorf("%s: portcullis %s: no subcommand", b, strings.Join(args, " "))
		return
	}
	var help string
	for k := len(words); k > 0; k-- {
		out, _ := exec.Command(bin, append(append([]string{}, words[:k]...), "-h")...).CombinedOutput()
		s := string(out)
		if strings.Contains(strings.ToLower(s), "usage") && !strings.Contains(s, "unknown command") {
			help = s
			break
		}
	}
	if help == "" {
		t.Errorf("%s: portcullis %s: not a command", b, strings.Join(words, " "))
		return
	}
	for _, m := range flagRe.FindAllStringSubmatch(strings.Join(args, " "), -1) {
		name := strings.TrimLeft(m[1], "-")
		if name == "h" || name == "help" {
			continue
		}
		if !regexp.MustCompile(`(^|[\s,])--?` + regexp.QuoteMeta(name) + `\b`).MatchString(help) {
			t.Errorf("%s: portcullis %s has no flag %s", b, strings.Join(words, " "), m[1])
		}
	}
}
