package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// readyz returns /readyz's status code and body.
func readyz(t *testing.T, base string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("readyz body: %v", err)
	}
	return resp.StatusCode, body
}

// TestServeStartsWithUpstreamsDown: `serve` with a typo'd upstream command and a remote URL
// nothing answers starts anyway, says which upstreams are down and why in /readyz and its log,
// serves the agent, and picks both up without a restart once they exist.
func TestServeStartsWithUpstreamsDown(t *testing.T) {
	echo := echoServer(t)
	fixture := conformanceFixture(t)
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, allowAll)
	bin := t.TempDir() // on serve's PATH; the command appears there later
	port := freePort(t)
	appendConfig(t, dir, "mcp:\n  upstreams:\n    - name: local\n      command: mcpecho-later\n    - name: remote\n      url: http://127.0.0.1:"+port+"/mcp\n")
	d := startServeEnv(t, dir, []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")})

	code, body := readyz(t, d.url)
	if code != http.StatusOK || body["status"] != "degraded" ||
		!strings.Contains(body["reason"], `"local": exec: "mcpecho-later": executable file not found`) ||
		!strings.Contains(body["reason"], `"remote": dial tcp`) {
		t.Fatalf("readyz with both upstreams down = %d %v", code, body)
	}
	if log := d.stderr.String(); !strings.Contains(log, "upstream unavailable at start") || !strings.Contains(log, "mcpecho-later") {
		t.Errorf("the log does not name the down upstream:\n%s", log)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cs := httpClient(t, ctx, d.url, agentKey)
	if names := toolNames(t, ctx, cs); len(names) != 0 {
		t.Errorf("tools/list with every upstream down = %v", names)
	}
	if r := call(t, ctx, cs, "local__echo", map[string]any{"text": "x"}); !r.IsError {
		t.Errorf("a call to a down upstream ran: %q", text(r))
	}

	// Both come up: the command now exists, the remote server listens.
	if err := os.Symlink(echo, filepath.Join(bin, "mcpecho-later")); err != nil {
		t.Fatal(err)
	}
	startHTTPServer(t, exec.Command(fixture, "-http", "127.0.0.1:"+port, "-stateless=false"), port)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if code, body = readyz(t, d.url); body["status"] == "ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstreams not picked up: readyz = %d %v\n%s", code, body, d.stderr.String())
		}
	}
	names := toolNames(t, ctx, cs)
	if !slices.Contains(names, "local__echo") || !slices.Contains(names, "remote__test_simple_text") {
		t.Errorf("tools/list after both came up = %v", names)
	}
	if r := call(t, ctx, cs, "local__echo", map[string]any{"text": "back"}); r.IsError || !strings.Contains(text(r), "back") {
		t.Errorf("echo after the upstream came up: %q", text(r))
	}
	cs.Close()
	d.stop(t)
	if strings.Contains(d.stderr.String(), "panic") {
		t.Errorf("panic in the log:\n%s", d.stderr.String())
	}
	auditVerify(t, dir)
}
