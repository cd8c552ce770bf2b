package mcp

import (
	"crypto/rand"
	"encoding/hex"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// processSession is the session of every call without an MCP session ID (the stdio transport:
// one agent process, one session), distinct per gateway process.
var processSession = func() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "stdio-" + hex.EncodeToString(b)
}()

// sessionOf is the session a call belongs to: the MCP session the gateway assigned
// (Mcp-Session-Id, never chosen by the agent), or the process's.
func sessionOf(req sdk.Request) string {
	if id := requestID(req); id != "" {
		return id
	}
	return processSession
}
