package mcp

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// The gateway does not proxy MCP tasks (tools/call with a task, tasks/get, tasks/result). A tool
// whose definition says execution.taskSupport "required" cannot be called without one, so it
// would be listed and then always fail. The go-sdk's client drops the execution member when it
// decodes a tools/list result, so the upstream's answers are read on the wire, here, to learn
// which tools require tasks; listTools hides them and logs why.

// taskTools is what an upstream's tools/list answers said about task support, kept across its
// reconnections.
type taskTools struct {
	mu       sync.Mutex
	required map[string]bool // tool name (the upstream's) → requires a task
	logged   map[string]bool // hidden tools already logged
}

// requires reports whether the upstream's tool name requires a task; first says whether this is
// the first time it is asked for that tool (to log it once).
func (tt *taskTools) requires(name string) (req, first bool) {
	if tt == nil {
		return false, false
	}
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if !tt.required[name] {
		return false, false
	}
	if tt.logged == nil {
		tt.logged = map[string]bool{}
	}
	first = !tt.logged[name]
	tt.logged[name] = true
	return true, first
}

// note reads one tools/list result.
func (tt *taskTools) note(result json.RawMessage) {
	var page struct {
		Tools []struct {
			Name      string `json:"name"`
			Execution *struct {
				TaskSupport string `json:"taskSupport"`
			} `json:"execution"`
		} `json:"tools"`
	}
	if json.Unmarshal(result, &page) != nil {
		return
	}
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if tt.required == nil {
		tt.required = map[string]bool{}
	}
	for _, t := range page.Tools {
		req := t.Execution != nil && t.Execution.TaskSupport == "required"
		if req {
			tt.required[t.Name] = true
		} else {
			delete(tt.required, t.Name)
			delete(tt.logged, t.Name)
		}
	}
}

// taskTransport is an upstream transport whose connections report tools/list answers to tt.
type taskTransport struct {
	next sdk.Transport
	tt   *taskTools
}

func (t taskTransport) Connect(ctx context.Context) (sdk.Connection, error) {
	c, err := t.next.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &taskConn{Connection: c, tt: t.tt, pending: map[jsonrpc.ID]bool{}}, nil
}

// taskConn notes the ids of the tools/list requests it writes and reads their answers.
type taskConn struct {
	sdk.Connection
	tt      *taskTools
	mu      sync.Mutex
	pending map[jsonrpc.ID]bool
}

func (c *taskConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if req, ok := msg.(*jsonrpc.Request); ok && req.Method == "tools/list" && req.ID.IsValid() {
		c.mu.Lock()
		c.pending[req.ID] = true
		c.mu.Unlock()
	}
	return c.Connection.Write(ctx, msg)
}

func (c *taskConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	msg, err := c.Connection.Read(ctx)
	if resp, ok := msg.(*jsonrpc.Response); ok && err == nil {
		c.mu.Lock()
		listing := c.pending[resp.ID]
		delete(c.pending, resp.ID)
		c.mu.Unlock()
		if listing && resp.Error == nil {
			c.tt.note(resp.Result)
		}
	}
	return msg, err
}
