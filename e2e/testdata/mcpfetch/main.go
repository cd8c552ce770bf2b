// Command mcpfetch is a fetch-like MCP server over stdio for the end-to-end tests: "fetch" GETs
// a URL and returns its body (outside content), "send" stands for any tool that sends data out:
// it appends its text to the file named by $SENT_FILE.
package main

import (
	"context"
	"io"
	"log"
	"net/http"
	"os"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type fetchIn struct {
	URL string `json:"url"`
}

type sendIn struct {
	Text string `json:"text"`
}

type out struct {
	Text string `json:"text"`
}

func main() {
	s := mcp.NewServer(&mcp.Implementation{Name: "mcpfetch", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "fetch", Description: "Fetches a web page."}, func(ctx context.Context, _ *mcp.CallToolRequest, in fetchIn) (*mcp.CallToolResult, out, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.URL, nil)
		if err != nil {
			return nil, out{}, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, out{}, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, out{Text: string(b)}, err
	})
	mcp.AddTool(s, &mcp.Tool{Name: "send", Description: "Sends text to a partner."}, func(_ context.Context, _ *mcp.CallToolRequest, in sendIn) (*mcp.CallToolResult, out, error) {
		f, err := os.OpenFile(os.Getenv("SENT_FILE"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, out{}, err
		}
		defer f.Close()
		_, err = f.WriteString(in.Text + "\n")
		return nil, out{Text: "sent"}, err
	})
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatal(err)
	}
}
