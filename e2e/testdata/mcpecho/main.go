// Command mcpecho is a tiny MCP server over stdio for the end-to-end tests: one tool, "echo",
// whose description comes from $ECHO_DESCRIPTION so a test can change it between runs (a rug
// pull), a "hang" tool that never answers, a "die" tool that exits mid-call, and "first", an echo
// that reads its arguments the way many JSON readers do (the first of two repeated keys wins).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log"
	"os"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type echoIn struct {
	Text string `json:"text"`
}

type echoOut struct {
	Text string `json:"text"`
}

func main() {
	desc := os.Getenv("ECHO_DESCRIPTION")
	if desc == "" {
		desc = "Echoes the text back."
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "mcpecho", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: desc}, func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, echoOut, error) {
		return nil, echoOut{Text: in.Text}, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "hang", Description: "Never returns."}, func(ctx context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, echoOut, error) {
		<-ctx.Done()
		return nil, echoOut{}, ctx.Err()
	})
	mcp.AddTool(s, &mcp.Tool{Name: "env", Description: "Returns the variable named by text."}, func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, echoOut, error) {
		return nil, echoOut{Text: "value=" + os.Getenv(in.Text)}, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "die", Description: "Exits mid-call."}, func(context.Context, *mcp.CallToolRequest, echoIn) (*mcp.CallToolResult, echoOut, error) {
		os.Exit(3)
		return nil, echoOut{}, nil
	})
	s.AddTool(&mcp.Tool{Name: "first", Description: "Echoes text, reading the first text key.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"}}}`)},
		func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: firstText(r.Params.Arguments)}}}, nil
		})
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatal(err)
	}
}

// firstText returns the first top-level "text" member of a JSON object, as a first-wins reader
// would.
func firstText(raw json.RawMessage) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{'
		return ""
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return ""
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return ""
		}
		if k == "text" {
			var s string
			_ = json.Unmarshal(v, &s)
			return s
		}
	}
	return ""
}
