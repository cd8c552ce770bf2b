package e2e

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tsHTTPRun is what e2e/ts-http-client.mjs printed.
type tsHTTPRun struct {
	Received []struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	Errors      []string
	CancelledID json.RawMessage
	CallOutcome string
	Echo        string

	Capabilities struct {
		Resources struct{ ListChanged bool }
		Prompts   struct{ ListChanged bool }
	}
	ResourcesChanged, PromptsChanged int
	PromptsBefore, PromptsAfter      []string
	Resources                        []string
	Gzip, Added                      string
}

// runTSHTTPClient runs the official TypeScript SDK client over Streamable HTTP against /mcp.
func runTSHTTPClient(t *testing.T, url, key, scenario string) tsHTTPRun {
	t.Helper()
	cmd := exec.Command("node", "ts-http-client.mjs", url+"/mcp", key, scenario)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ts client: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var got tsHTTPRun
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("ts client output: %v\n%s", err, stdout.String())
	}
	return got
}

const tsHTTPPolicy = `agent_id: report-generator-v1
default_action: DENY
rules:
  - name: tools
    tool: "(ev|pr)__.+"
    action: ALLOW
  - name: reads
    tool: "mcp.(resources.read|prompts.get)"
    action: ALLOW
`

// TestMCPHTTPCancelledRequestNotAnswered: the TypeScript SDK client aborts a long call over
// Streamable HTTP (AbortController: notifications/cancelled); the gateway cancels it upstream
// and sends no answer for it — not on the call's stream, not on a resumed one — and the session
// goes on.
func TestMCPHTTPCancelledRequestNotAnswered(t *testing.T) {
	everything := everythingServer(t)
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, tsHTTPPolicy)
	appendConfig(t, dir, "mcp:\n  upstreams:\n    - name: ev\n      command: node\n      args: [\""+everything+"\", \"stdio\"]\n")
	d := startServe(t, dir)
	got := runTSHTTPClient(t, d.url, agentKey, "cancel")
	if len(got.CancelledID) == 0 || !strings.Contains(got.CallOutcome, "user stopped it") {
		t.Fatalf("the call was not cancelled by the client: id %s, outcome %q", got.CancelledID, got.CallOutcome)
	}
	if got.Echo != "Echo: after the cancel" {
		t.Errorf("a call after the cancellation: %q", got.Echo)
	}
	sawProgress := false
	for _, m := range got.Received {
		if m.Method == "" && bytes.Equal(m.ID, got.CancelledID) {
			t.Errorf("the cancelled request %s was answered", got.CancelledID)
		}
		sawProgress = sawProgress || m.Method == "notifications/progress"
	}
	if !sawProgress {
		t.Error("the call was cancelled before it ran upstream (no progress seen)")
	}
	auditVerify(t, dir)
}

// TestMCPHTTPListChangedRelayed: upstreams whose resource list (server-everything registers a
// resource for a gzipped file) and prompt list (a TypeScript SDK server adding a prompt) change
// send list_changed; the TypeScript SDK client connected to /mcp gets each, the capabilities
// announce them, and the new items are listed.
func TestMCPHTTPListChangedRelayed(t *testing.T) {
	everything := everythingServer(t)
	fixture, err := filepath.Abs("testdata/listchanged/server.mjs")
	if err != nil {
		t.Fatal(err)
	}
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, tsHTTPPolicy)
	appendConfig(t, dir, "mcp:\n  upstreams:\n"+
		"    - name: ev\n      command: node\n      args: [\""+everything+"\", \"stdio\"]\n"+
		"    - name: pr\n      command: node\n      args: [\""+fixture+"\"]\n")
	d := startServe(t, dir)
	got := runTSHTTPClient(t, d.url, agentKey, "listchanged")
	if !got.Capabilities.Resources.ListChanged || !got.Capabilities.Prompts.ListChanged {
		t.Errorf("capabilities: %+v, want resources and prompts listChanged", got.Capabilities)
	}
	if got.ResourcesChanged == 0 {
		t.Errorf("no notifications/resources/list_changed after %q", got.Gzip)
	}
	if diff := cmpDiff([]string{"demo://resource/session/hello.txt.gz"}, got.Resources); diff != "" {
		t.Errorf("session resources (-want +got):\n%s", diff)
	}
	if got.PromptsChanged == 0 {
		t.Errorf("no notifications/prompts/list_changed after %q", got.Added)
	}
	if diff := cmpDiff([]string{"pr__first", "pr__second"}, filterPrefix(got.PromptsAfter, "pr__")); diff != "" {
		t.Errorf("prompts after the change (-want +got):\n%s", diff)
	}
	if diff := cmpDiff([]string{"pr__first"}, filterPrefix(got.PromptsBefore, "pr__")); diff != "" {
		t.Errorf("prompts before the change (-want +got):\n%s", diff)
	}
}

func filterPrefix(ss []string, prefix string) []string {
	var out []string
	for _, s := range ss {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}
