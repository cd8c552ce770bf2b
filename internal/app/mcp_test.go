package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/config"
)

// TestHTTPUpstreamResumesClosedStream: a remote upstream may close a call's event stream and
// deliver the result on a resumed one (SEP-1699). The gateway's transport to it resumes instead
// of failing the call (and with it the upstream session).
func TestHTTPUpstreamResumesClosedStream(t *testing.T) {
	srv := sdk.NewServer(&sdk.Implementation{Name: "resumable", Version: "1"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "reconnect"}, func(_ context.Context, r *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, any, error) {
		// Close the stream before answering: the answer goes to the event store and reaches the
		// client only if it reconnects with Last-Event-ID.
		r.Extra.CloseSSEStream(sdk.CloseSSEStreamArgs{RetryAfter: time.Millisecond})
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "after the reconnection"}}}, nil, nil
	})
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv },
		&sdk.StreamableHTTPOptions{EventStore: sdk.NewMemoryEventStore(nil)})
	hs := httptest.NewServer(h)
	defer hs.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := MCPUpstreams([]config.MCPUpstream{{Name: "r", URL: hs.URL}}, os.Stderr)[0].NewTransport()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "gw", Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "reconnect", Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("call over a closed and resumed stream: %v", err)
	}
	if res.IsError || len(res.Content) != 1 || res.Content[0].(*sdk.TextContent).Text != "after the reconnection" {
		t.Errorf("result: %+v", res)
	}
}
