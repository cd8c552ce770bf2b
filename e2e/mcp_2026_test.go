//lint:file-ignore SA1019 logging is deprecated from protocol revision 2026-07-28 on; agents on that revision still ask for it per request, and the gateway relays it.

package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMCPAgentOnRevision20260728: an agent speaking MCP 2026-07-28 (the go-sdk client: server/
// discover, per-request _meta, subscriptions/listen) through the stdio wrapper in front of the
// go-sdk conformance server (2025-11-25). It gets the upstream's log lines for a call that asks
// for a level in its _meta, subscribes to a resource (subscriptions/listen, decided like a read)
// and gets its updates, and gets prompts/list_changed on its listen stream.
func TestMCPAgentOnRevision20260728(t *testing.T) {
	fixture := conformanceFixture(t)
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, allowAll)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var (
		mu      sync.Mutex
		logs    []string
		updated = make(chan string, 16)
		prompts = make(chan struct{}, 16)
	)
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-2026", Version: "1"}, &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			mu.Lock()
			defer mu.Unlock()
			if s, ok := r.Params.Data.(string); ok {
				logs = append(logs, string(r.Params.Level)+" "+s)
			}
		},
		ResourceUpdatedHandler: func(_ context.Context, r *mcp.ResourceUpdatedNotificationRequest) { updated <- r.Params.URI },
		PromptListChangedHandler: func(context.Context, *mcp.PromptListChangedRequest) {
			prompts <- struct{}{}
		},
	})
	cmd := exec.Command(binary(t), "mcp", "--data", dir, "--", fixture)
	cmd.Env = append(os.Environ(), "PORTCULLIS_API_KEY="+agentKey)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, &mcp.ClientSessionOptions{ProtocolVersion: "2026-07-28"})
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, stderr.String())
	}
	if v := cs.InitializeResult().ProtocolVersion; v != "2026-07-28" {
		t.Fatalf("negotiated %s, want 2026-07-28", v)
	}

	// Logs: the level is the request's own (_meta), not a session's.
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_tool_with_logging", Meta: mcp.Meta{mcp.MetaKeyLogLevel: "info"}})
	if err != nil || res.IsError {
		t.Fatalf("test_tool_with_logging: %v %+v", err, res)
	}
	mu.Lock()
	got := append([]string(nil), logs...)
	mu.Unlock()
	// Lines the upstream sent just before answering may be handled after the call returned,
	// when a 2026-07-28 agent has no stream left to receive them: the first one always comes.
	if len(got) == 0 || got[0] != "info Tool execution started" {
		t.Errorf("log lines during the call: %q, want the upstream's lines from \"info Tool execution started\"", got)
	}

	// A resource subscription over subscriptions/listen, decided and forwarded upstream: the
	// fixture updates test://watched-resource every 3 s.
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "test://watched-resource"}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	select {
	case uri := <-updated:
		if uri != "test://watched-resource" {
			t.Errorf("update for %s", uri)
		}
	case <-time.After(15 * time.Second):
		t.Error("no notifications/resources/updated for the subscribed resource")
	}

	// prompts/list_changed, relayed to the listen stream the client opened at connect.
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_trigger_prompt_change"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-prompts:
	case <-time.After(10 * time.Second):
		t.Error("no notifications/prompts/list_changed")
	}
	cs.Close()
	if strings.Contains(stderr.String(), "panic") {
		t.Errorf("the wrapper panicked:\n%s", stderr.String())
	}
	auditVerify(t, dir)
}
