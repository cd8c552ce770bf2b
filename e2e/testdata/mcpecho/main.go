// Command mcpecho is a tiny MCP server over stdio for the end-to-end tests: one tool, "echo",
// whose description comes from $ECHO_DESCRIPTION so a test can change it between runs (a rug
// pull), a "hang" tool that never answers and a "die" tool that exits mid-call.
package main

import (
	"context"
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
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatal(err)
	}
}
