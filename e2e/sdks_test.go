package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/sdk/httpsig"
)

// sdkGateway is the embedded default with a signing key for the demo agent: it returns the data
// directory, the agent's API key, the approver's key, the signing key id and its private seed.
func sdkGateway(t *testing.T) (d *daemon, agentKey, approverKey, keyID, seed string) {
	t.Helper()
	dir, agentKey, approverKey := initData(t)
	_, seed, pub, err := httpsig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyID = "report-generator-sdk-test"
	cfgPath := filepath.Join(dir, "portcullis.yaml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(cfg, []byte("      roles: [reporting]\n"),
		[]byte("      roles: [reporting]\n      signing_keys:\n        - id: "+keyID+"\n          public_key: \""+pub+"\"\n"), 1)
	if bytes.Equal(edited, cfg) {
		t.Fatal("the default configuration has no demo agent to give a signing key")
	}
	if err := os.WriteFile(cfgPath, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	return startServe(t, dir), agentKey, approverKey, keyID, seed
}

// runScenario runs a client's scenario script against a fresh gateway: it approves the held
// call the script announces and returns the script's final results.
func runScenario(t *testing.T, name string, args ...string) (first, done map[string]any) {
	t.Helper()
	d, agentKey, approverKey, keyID, seed := sdkGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "PORTCULLIS_URL="+d.url, "PORTCULLIS_API_KEY="+agentKey,
		"PORTCULLIS_KEY_ID="+keyID, "PORTCULLIS_SIGNING_KEY="+seed)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("%s printed %q", name, sc.Text())
		}
		switch {
		case line["results"] != nil:
			first = line["results"].(map[string]any)
		case line["held"] != nil:
			id, _ := line["held"].(string)
			if line["decision"] != "CONSTRAIN" || !strings.HasPrefix(id, "apr_") {
				t.Fatalf("held call: %v", line)
			}
			// The client is already waiting (wait_seconds) when the approval lands.
			time.Sleep(300 * time.Millisecond)
			if code, out, errs := cli(t, []string{"PORTCULLIS_URL=" + d.url, "PORTCULLIS_APPROVER_KEY=" + approverKey}, "approvals", "approve", id); code != 0 {
				t.Fatalf("approve %s: %d %s %s", id, code, out, errs)
			}
		case line["done"] != nil:
			done = line["done"].(map[string]any)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("%s stderr:\n%s", name, stderr.String())
	}
	if first == nil || done == nil {
		t.Fatalf("%s did not finish its scenario\n%s", name, stderr.String())
	}
	return first, done
}

// The same scenario, in each client's language, against the real binary: signatures the client
// made verify at the gateway, error answers arrive as typed errors with the API's codes, a
// denied call never runs, an injected result is withheld, and a held call runs once after a
// human approves it while the client waits.
func checkScenario(t *testing.T, first, done map[string]any) {
	t.Helper()
	want := map[string]any{
		"allow": "ALLOW", "outcome": "pass", "outcome_again": "409 outcome_already_reported",
		"signed": "ALLOW", "signed_outcome": "redact",
		"replay_first": float64(200), "replay_second": "signature_replayed",
		"stranger":                 "401 credential_invalid",
		"wrong_key":                "401 credential_invalid",
		"agent_mismatch":           "401 agent_mismatch",
		"malformed_params":         "400 malformed_params",
		"invalid_tool_name":        "400 invalid_tool_name",
		"too_deep":                 "400 too_deep",
		"too_many_params":          "413 too_many_params",
		"body_too_large":           "413 body_too_large",
		"user_assertion_untrusted": "403 user_assertion_untrusted",
		"outcome_without_token":    "403 outcome_token_invalid",
		"deny":                     "DENY", "deny_ran": false,
		"injected": "withheld",
	}
	if diff := cmpDiff(want, first); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	wantDone := map[string]any{"approved": "ALLOW", "approved_outcome": "pass", "approved_again": "DENY"}
	for k, v := range wantDone {
		if done[k] != v {
			t.Errorf("%s = %v, want %v", k, done[k], v)
		}
	}
}

// pythonWithCryptography returns python3 when it can import the package the Python client signs
// with, or the reason it cannot.
func pythonWithCryptography() (string, error) {
	py, err := exec.LookPath("python3")
	if err != nil {
		return "", err
	}
	if out, err := exec.Command(py, "-c", "import cryptography").CombinedOutput(); err != nil {
		return "", fmt.Errorf("python3 lacks the cryptography package: %s", out)
	}
	return py, nil
}

// needNode and needPython skip a test whose runtime is absent, saying which and why.
func needNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("node is not installed: %s needs it", t.Name())
	}
	return node
}

func needPython(t *testing.T) string {
	t.Helper()
	py, err := pythonWithCryptography()
	if err != nil {
		t.Skipf("%s needs python3 with cryptography: %v", t.Name(), err)
	}
	return py
}

func TestSDKTypeScriptAgainstGateway(t *testing.T) {
	node := needNode(t)
	first, done := runScenario(t, node, "sdk/scenario.mjs")
	checkScenario(t, first, done)
}

func TestSDKPythonAgainstGateway(t *testing.T) {
	py := needPython(t)
	first, done := runScenario(t, py, "sdk/scenario.py")
	checkScenario(t, first, done)
}

// The clients' own tests (the shared RFC 9421 vectors, the scripted-server tests) run with go
// test, so CI runs them wherever node and python3 are.
func TestSDKTypeScriptUnit(t *testing.T) {
	node := needNode(t)
	cmd := exec.Command(node, "--test", "test/")
	cmd.Dir = "../sdk/typescript"
	if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("# fail 0")) {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
}

func TestSDKPythonUnit(t *testing.T) {
	py := needPython(t)
	cmd := exec.Command(py, "-m", "unittest", "discover", "-s", "tests")
	cmd.Dir = "../sdk/python"
	if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("\nOK")) {
		t.Fatalf("python3 -m unittest: %v\n%s", err, out)
	}
}

var (
	backtickRe  = regexp.MustCompile("`([^`]+)`")
	statusRe    = regexp.MustCompile(`^[45]\d\d$`)
	statusCode  = regexp.MustCompile(`^([45]\d\d) ([a-z][a-z_]+)$`)
	errorCodeRe = regexp.MustCompile(`^[a-z]+(_[a-z0-9]+)+$`)
)

// documentedErrors are the error answers the documentation names: each status and code of
// docs/api.md's answer tables and prose ("`409 outcome_already_reported`"), and every code of
// docs/identity.md's table (answered 401).
func documentedErrors(t *testing.T) []map[string]any {
	t.Helper()
	seen := map[string]bool{}
	var out []map[string]any
	add := func(status int, code string) {
		if !seen[code] {
			seen[code] = true
			out = append(out, map[string]any{"status": status, "code": code})
		}
	}
	api, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(api), "\n") {
		status := 0
		for _, m := range backtickRe.FindAllStringSubmatch(line, -1) {
			tok := m[1]
			switch {
			case statusRe.MatchString(tok):
				status, _ = strconv.Atoi(tok)
			case statusCode.MatchString(tok):
				sc := statusCode.FindStringSubmatch(tok)
				n, _ := strconv.Atoi(sc[1])
				add(n, sc[2])
			case status != 0 && errorCodeRe.MatchString(tok) && strings.HasPrefix(line, "|"):
				add(status, tok)
			}
		}
	}
	identity, err := os.ReadFile("../docs/identity.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(identity), "## Error codes")
	table, _, _ = strings.Cut(table, "\n## ")
	for _, line := range strings.Split(table, "\n") {
		if cell, _, ok := strings.Cut(strings.TrimPrefix(line, "| "), " |"); ok && strings.HasPrefix(line, "| `") {
			for _, m := range backtickRe.FindAllStringSubmatch(cell, -1) {
				add(401, m[1])
			}
		}
	}
	return out
}

// Every documented error answer reaches the caller of each client as a typed error with its
// status and code, from decide and from outcome alike.
func TestSDKDocumentedErrorCodes(t *testing.T) {
	answers := documentedErrors(t)
	if len(answers) < 30 {
		t.Fatalf("%d documented error codes: the docs lost their tables, or this test lost its way", len(answers))
	}
	t.Logf("%d documented error answers", len(answers))
	file := filepath.Join(t.TempDir(), "answers.json")
	raw, _ := json.Marshal(answers)
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{}
	for _, a := range answers {
		want[a["code"].(string)] = fmt.Sprintf("%d %s", a["status"], a["code"])
	}
	for _, c := range []struct{ lang, script string }{{"typescript", "sdk/codes.mjs"}, {"python", "sdk/codes.py"}} {
		t.Run(c.lang, func(t *testing.T) {
			var bin string
			if c.lang == "typescript" {
				bin = needNode(t)
			} else {
				bin = needPython(t)
			}
			out, err := exec.Command(bin, c.script, file).Output()
			if err != nil {
				t.Fatalf("%s: %v\n%s", c.script, err, out)
			}
			var got map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%s printed %q", c.script, out)
			}
			if diff := cmpDiff(want, got); diff != "" {
				t.Errorf("typed errors (-documented +surfaced):\n%s", diff)
			}
		})
	}
}

// The clients install as packages, from the repository alone (no package index): pip builds the
// Python client with its standard-library backend into a fresh virtual environment, and npm
// installs the TypeScript client's packed tarball; each then imports from outside the tree.
func TestSDKPackagesInstall(t *testing.T) {
	t.Run("python", func(t *testing.T) {
		py := needPython(t)
		venv := filepath.Join(t.TempDir(), "venv")
		if out, err := exec.Command(py, "-m", "venv", "--system-site-packages", venv).CombinedOutput(); err != nil {
			t.Skipf("python3 cannot make a virtual environment: %v\n%s", err, out)
		}
		if out, err := exec.Command(filepath.Join(venv, "bin", "pip"), "install", "--no-index", "../sdk/python").CombinedOutput(); err != nil {
			t.Fatalf("pip install: %v\n%s", err, out)
		}
		cmd := exec.Command(filepath.Join(venv, "bin", "python"), "-c", "import portcullis, portcullis.httpsig; print(portcullis.__file__)")
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), filepath.Join(venv, "lib")) {
			t.Fatalf("import after install: %v\n%s", err, out)
		}
	})
	t.Run("typescript", func(t *testing.T) {
		node := needNode(t)
		npm, err := exec.LookPath("npm")
		if err != nil {
			t.Skip("npm is not installed")
		}
		packDir := t.TempDir()
		pack := exec.Command(npm, "pack", "--pack-destination", packDir, "--silent")
		pack.Dir = "../sdk/typescript"
		out, err := pack.Output()
		if err != nil {
			t.Fatalf("npm pack: %v\n%s", err, out)
		}
		app := t.TempDir()
		if err := os.WriteFile(filepath.Join(app, "package.json"), []byte(`{"name":"app","private":true,"type":"module"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		install := exec.Command(npm, "install", "--offline", "--no-audit", "--no-fund", filepath.Join(packDir, strings.TrimSpace(string(out))))
		install.Dir = app
		if out, err := install.CombinedOutput(); err != nil {
			t.Fatalf("npm install: %v\n%s", err, out)
		}
		script := `import { Client } from '@portcullis/sdk'; import { Signer } from '@portcullis/sdk/httpsig';
import { guardTools } from '@portcullis/sdk/integrations/ai'; import { guardTool } from '@portcullis/sdk/integrations/langchain';
import { guardFunctionTool } from '@portcullis/sdk/integrations/openai-agents';
console.log([Client, Signer, guardTools, guardTool, guardFunctionTool].every((f) => typeof f === 'function'));`
		if err := os.WriteFile(filepath.Join(app, "main.mjs"), []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
		run := exec.Command(node, "main.mjs")
		run.Dir = app
		if out, err := run.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "true" {
			t.Fatalf("import after install: %v\n%s", err, out)
		}
	})
}
