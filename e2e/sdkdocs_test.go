package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// outputRe finds the output a docs example promises: a trailing "// → …" or "# → …" comment.
var outputRe = regexp.MustCompile(`(?://|#) → (.*)$`)

// Every ```js and ```python example of docs/sdks.md runs against a real gateway and prints what
// its "→" comments say ("…" stands for an ID).
func TestSDKDocsExamples(t *testing.T) {
	var blocks []block
	for _, b := range docBlocks(t) {
		if b.file == "docs/sdks.md" && (b.lang == "js" || b.lang == "python") {
			blocks = append(blocks, b)
		}
	}
	if len(blocks) < 8 {
		t.Fatalf("docs/sdks.md has %d examples: they went missing, or this test lost its way", len(blocks))
	}
	node, nodeErr := exec.LookPath("node")
	_, modErr := os.Stat("frameworks/node_modules/@portcullis/sdk")
	py, pyErr := pythonWithCryptography()
	d, agentKey, _, keyID, seed := sdkGateway(t)
	env := append(os.Environ(), "PORTCULLIS_URL="+d.url, "PORTCULLIS_API_KEY="+agentKey, "PORTCULLIS_KEY_ID="+keyID, "PORTCULLIS_SIGNING_KEY="+seed)
	sdkPython, _ := filepath.Abs("../sdk/python")
	for i, b := range blocks {
		t.Run(b.lang+"_"+strconv.Itoa(b.line), func(t *testing.T) {
			var cmd *exec.Cmd
			switch b.lang {
			case "js":
				if nodeErr != nil || modErr != nil {
					t.Skip("node or e2e/frameworks/node_modules is absent (npm ci --prefix e2e/frameworks)")
				}
				// Inside e2e/frameworks, where @portcullis/sdk and the frameworks are installed.
				f := filepath.Join("frameworks", ".doc-example-"+strconv.Itoa(i)+".mjs")
				if err := os.WriteFile(f, []byte(b.body), 0o600); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Remove(f) })
				cmd = exec.Command(node, filepath.Base(f))
				cmd.Dir = "frameworks"
				cmd.Env = env
			case "python":
				if pyErr != nil {
					t.Skip("python3 with the cryptography package is absent")
				}
				cmd = exec.Command(py, "-c", b.body)
				cmd.Env = append(env, "PYTHONPATH="+sdkPython)
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", b, err, out)
			}
			for _, line := range strings.Split(b.body, "\n") {
				m := outputRe.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				for _, part := range strings.Split(m[1], "…") {
					if !strings.Contains(string(out), strings.TrimSpace(part)) {
						t.Errorf("%s: the output lacks %q (from %q):\n%s", b, strings.TrimSpace(part), line, out)
					}
				}
			}
		})
	}
}
