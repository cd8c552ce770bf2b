package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// clientUnderTestEnv marks the process the conformance suite runs as its client under test.
const clientUnderTestEnv = "PORTCULLIS_CONFORMANCE_CLIENT"

// TestMCPConformanceClient runs the conformance suite's client scenarios with the gateway's
// upstream side as the client under test: for each scenario the suite starts a server (and,
// for auth/*, an authorization server), and runs TestConformanceClientUnderTest, which puts
// `portcullis serve` in front of that server and has an agent use it through /mcp. Every
// scenario must end as clientByDesign says: passing, or failing for the reason it gives.
func TestMCPConformanceClient(t *testing.T) {
	node, suite := conformanceSuite(t)
	bin := binary(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var list bytes.Buffer
	lc := exec.CommandContext(ctx, node, suite, "list")
	lc.Stdout, lc.Stderr = &list, &list
	if err := lc.Run(); err != nil {
		t.Fatalf("conformance list: %v\n%s", err, list.String())
	}
	_, clients, _ := strings.Cut(list.String(), "Client scenarios")
	var scenarios []string
	for _, m := range regexp.MustCompile(`(?m)^\s+- (\S+) \[`).FindAllStringSubmatch(clients, -1) {
		scenarios = append(scenarios, m[1])
	}
	if len(scenarios) < 20 {
		t.Fatalf("the suite lists %d client scenarios:\n%s", len(scenarios), list.String())
	}
	var table strings.Builder
	table.WriteString("| client scenario | gateway as the client |\n|---|---|\n")
	for _, s := range scenarios {
		out := t.TempDir()
		cmd := exec.CommandContext(ctx, node, suite, "client", "--scenario", s, "--timeout", "60000", "-o", out,
			"--command", exe+" -test.run=^TestConformanceClientUnderTest$")
		cmd.Env = append(os.Environ(), clientUnderTestEnv+"=1", "PORTCULLIS_E2E_BIN="+bin)
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		runErr := cmd.Run()
		failed := failedChecks(t, out)
		pass := runErr == nil && len(failed) == 0
		mark := "pass"
		if !pass {
			mark = "fail: " + strings.Join(failed, "; ")
		}
		table.WriteString("| " + s + " | " + mark + " |\n")
		reason, expected := clientByDesign[s]
		switch {
		case !pass && !expected:
			t.Errorf("client scenario %s fails with the gateway as the client (%v): %s\n%s", s, runErr, strings.Join(failed, "; "), log.String())
		case pass && expected:
			t.Errorf("client scenario %s passes although listed as failing (%s): update clientByDesign and docs/mcp.md", s, reason)
		}
	}
	t.Logf("conformance client scenarios:\n%s", table.String())
}

// failedChecks names the checks of a scenario's run (its checks.json under dir) that failed or
// warned: the suite counts both against the scenario.
func failedChecks(t *testing.T, dir string) []string {
	t.Helper()
	// A scenario named auth/x saves its results under dir/auth/x-<time>/.
	var files []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "checks.json" {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 1 {
		return []string{"no checks.json"}
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var checks []struct{ ID, Status, Description string }
	if err := json.Unmarshal(b, &checks); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range checks {
		if c.Status == "FAILURE" || c.Status == "WARNING" {
			out = append(out, c.ID+" ("+c.Status+"): "+c.Description)
		}
	}
	return out
}

// clientByDesign: client scenarios the gateway fails, and why (docs/mcp.md says the same).
var clientByDesign = map[string]string{}

func init() {
	// The authorization code grant needs a person at a browser to log in and consent; the
	// gateway is a service that holds its own credentials, and takes part only in the grants a
	// service can: client credentials (with a pre-registered secret).
	for _, s := range []string{"auth/metadata-default", "auth/metadata-var1", "auth/metadata-var2", "auth/metadata-var3",
		"auth/basic-cimd", "auth/scope-from-www-authenticate", "auth/scope-from-scopes-supported",
		"auth/scope-omitted-when-undefined", "auth/scope-step-up", "auth/scope-retry-limit",
		"auth/token-endpoint-auth-basic", "auth/token-endpoint-auth-post", "auth/token-endpoint-auth-none",
		"auth/2025-03-26-oauth-metadata-backcompat", "auth/2025-03-26-oauth-endpoint-fallback",
		"auth/offline-access-scope", "auth/offline-access-not-supported"} {
		clientByDesign[s] = "authorization code grant: needs a user at a browser; the gateway uses client credentials"
	}
	clientByDesign["auth/cross-app-access-complete-flow"] = "SEP-990 enterprise-managed authorization (token exchange of a user's ID token) is not supported"
}

// TestConformanceClientUnderTest is the client the conformance suite runs, not a test of its
// own: TestMCPConformanceClient starts it. It puts `portcullis serve` in front of the
// scenario's server (the URL, the last argument) and uses it as an agent would: list the tools
// and call each. Client credentials the scenario hands over (MCP_CONFORMANCE_CONTEXT) are
// configured as the upstream's oauth, with the authorization server the server's
// protected-resource metadata names as the trusted issuer, as an operator would.
func TestConformanceClientUnderTest(t *testing.T) {
	if os.Getenv(clientUnderTestEnv) == "" {
		t.Skip("the conformance suite's client under test: run by TestMCPConformanceClient")
	}
	upstream := flag.Arg(flag.NArg() - 1)
	scenario := os.Getenv("MCP_CONFORMANCE_SCENARIO")
	var cc struct {
		ClientID      string `json:"client_id"`
		ClientSecret  string `json:"client_secret"`
		PrivateKeyPEM string `json:"private_key_pem"`
	}
	if c := os.Getenv("MCP_CONFORMANCE_CONTEXT"); c != "" {
		if err := json.Unmarshal([]byte(c), &cc); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, allowAll)
	up := "    - url: " + upstream + "\n"
	var env []string
	if cc.ClientSecret != "" || cc.PrivateKeyPEM != "" {
		issuer, err := metadataIssuer(ctx, upstream)
		if err != nil {
			t.Fatalf("%s: %v", scenario, err)
		}
		up += "      oauth:\n        issuer: " + issuer + "\n        client_id: " + cc.ClientID + "\n"
		if cc.PrivateKeyPEM != "" {
			if err := os.WriteFile(filepath.Join(dir, "client-key.pem"), []byte(cc.PrivateKeyPEM), 0o600); err != nil {
				t.Fatal(err)
			}
			up += "        auth_method: private_key_jwt\n        private_key_file: client-key.pem\n"
		} else {
			up += "        client_secret_env: CONFORMANCE_CLIENT_SECRET\n"
			env = append(env, "CONFORMANCE_CLIENT_SECRET="+cc.ClientSecret)
		}
	}
	appendConfig(t, dir, "mcp:\n  server_requests:\n    elicitation: allow\n  upstreams:\n"+up)
	d := startServeEnv(t, dir, env)
	t.Cleanup(func() {
		if t.Failed() { // the suite saves this process's stderr with the scenario's results
			fmt.Fprintf(os.Stderr, "portcullis serve's log:\n%s\n", d.stderr.String())
		}
	})
	client := mcp.NewClient(&mcp.Implementation{Name: "conformance-agent", Version: "1"}, &mcp.ClientOptions{
		// The agent's user accepts what is asked, leaving every field to its default.
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{}}, nil
		},
	})
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: d.url + "/mcp", HTTPClient: &http.Client{Transport: keyTransport{agentKey}}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("%s: connect to the gateway: %v", scenario, err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("%s: tools/list: %v", scenario, err)
	}
	for _, tl := range tools.Tools {
		args := map[string]any{}
		if tl.Name == "add_numbers" {
			args = map[string]any{"a": 5, "b": 3}
		}
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tl.Name, Arguments: args})
		if err != nil {
			t.Errorf("%s: tools/call %s: %v", scenario, tl.Name, err)
			continue
		}
		fmt.Fprintf(os.Stderr, "%s: %s -> error=%v %s\n", scenario, tl.Name, res.IsError, text(res))
	}
	if len(tools.Tools) == 0 {
		fmt.Fprintf(os.Stderr, "%s: no tools; /readyz: ", scenario)
		_, body := readyz(t, d.url)
		fmt.Fprintln(os.Stderr, body)
	}
	_ = cs.Close()
	d.stop(t)
}

// metadataIssuer is the first authorization server the protected-resource metadata of the MCP
// server at upstream names (RFC 9728, at the path-inserted well-known URL, else the root one).
func metadataIssuer(ctx context.Context, upstream string) (string, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return "", err
	}
	for _, p := range []string{"/.well-known/oauth-protected-resource" + u.Path, "/.well-known/oauth-protected-resource"} {
		m := *u
		m.Path = p
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.String(), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		var prm struct {
			AuthorizationServers []string `json:"authorization_servers"`
		}
		err = json.NewDecoder(resp.Body).Decode(&prm)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK && len(prm.AuthorizationServers) > 0 {
			return prm.AuthorizationServers[0], nil
		}
	}
	return "", fmt.Errorf("no protected-resource metadata for %s", upstream)
}
