package mcp

import (
	"io"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/gateway/mcp/stdioconn"
)

// NewStdioTransport is the agent-facing transport of the stdio wrapper: newline-delimited
// JSON-RPC on r and w, except that a line that is not JSON, is longer than maxLine bytes or is
// not a JSON-RPC message is answered with a JSON-RPC error (parse error / invalid request) and
// skipped, instead of ending the session. Nothing of such a line reaches the SDK, let alone an
// upstream. Closing the connection does not close r or w.
func NewStdioTransport(r io.Reader, w io.Writer, maxLine int) sdk.Transport {
	return &stdioconn.Transport{Reader: r, Writer: w, Options: stdioconn.Options{MaxLine: maxLine, AnswerBadLines: true}}
}
