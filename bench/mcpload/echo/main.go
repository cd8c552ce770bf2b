// Command echo is the upstream MCP server of bench/mcpload: one tool, "echo", that returns its
// "text" argument as text content. It speaks MCP over stdio, or over Streamable HTTP with -http.
//
//	echo                      # stdio
//	echo -http 127.0.0.1:0    # prints "listening on http://ADDR/mcp" on stdout
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"runtime/debug"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type echoIn struct {
	Text string `json:"text"`
}

func main() {
	addr := flag.String("http", "", "serve Streamable HTTP at this address instead of stdio")
	flag.Parse()
	// The upstream keeps Go's collector defaults whatever the environment says: the stdio wrapper
	// passes its own environment on to the server it launches, and a benchmark that sets GOGC for
	// the gateway must change the gateway only.
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)

	s := mcp.NewServer(&mcp.Implementation{Name: "mcpload-echo", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echoes the text back."},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
		})
	if *addr == "" {
		if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
			log.Fatal(err)
		}
		return
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "listening on http://%s/mcp\n", ln.Addr())
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	log.Fatal(http.Serve(ln, h))
}
