//lint:file-ignore SA1019 logging is deprecated from protocol revision 2026-07-28 on; servers and agents on 2025-11-25 still use it.

package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// logTool logs its text at info, and a secret at warning, while it runs.
func logTool(ctx context.Context, r *sdk.CallToolRequest, a struct {
	Text string `json:"text"`
}) (*sdk.CallToolResult, any, error) {
	for _, p := range []*sdk.LoggingMessageParams{{Level: "info", Data: a.Text}, {Level: "warning", Data: "key sk_test_" + "Zq8vR2mN4pL6tY1xW3cB5dFh"}} {
		if err := r.Session.Log(ctx, p); err != nil {
			return nil, nil, err
		}
	}
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "logged"}}}, nil, nil
}

// TestMCPLogsRelayedOverHTTP: behind serve, an agent on Streamable HTTP that set a level gets a
// remote upstream's log lines during its call, the secret in one of them redacted, and
// /metrics counts them.
func TestMCPLogsRelayedOverHTTP(t *testing.T) {
	m := newMCPSigned(t)
	got := make(chan *sdk.LoggingMessageParams, 8)
	cs := m.connectWith(t, m.signer, &sdk.ClientOptions{LoggingMessageHandler: func(_ context.Context, r *sdk.LoggingMessageRequest) { got <- r.Params }})
	ctx := context.Background()
	if err := cs.SetLoggingLevel(ctx, &sdk.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "up__log", Arguments: map[string]any{"text": "working"}})
	if err != nil || res.IsError {
		t.Fatalf("up__log: %v %+v", err, res)
	}
	var lines []string
	for len(lines) < 2 {
		select {
		case p := <-got:
			lines = append(lines, fmt.Sprintf("%s %s %v", p.Level, p.Logger, p.Data))
		case <-time.After(5 * time.Second):
			t.Fatalf("got %q, want 2 lines", lines)
		}
	}
	// The two may come on different streams (the call's, the session's): in either order.
	slices.Sort(lines)
	// Only the key is replaced; the rest of the line stays readable.
	if lines[0] != "info up working" || lines[1] != "warning up key [REDACTED:stripe]" {
		t.Errorf("agent got %q", lines)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		body := m.get(t, "/metrics")
		if strings.Contains(body, `portcullis_mcp_log_messages_total{outcome="relayed"} 2`) &&
			strings.Contains(body, `portcullis_mcp_log_messages_total{outcome="redacted"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack the relayed lines:\n%s", body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
