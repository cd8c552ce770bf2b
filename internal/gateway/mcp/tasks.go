package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
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

// withTaskTracking returns t reporting its tools/list answers to tt. A Streamable HTTP transport
// is watched at the HTTP layer: wrapping its connection would hide the go-sdk's own connection
// type from the client, which then never opens the standalone SSE stream, and every message a
// remote server sends outside a request (a request unrelated to a call, a list change, a
// resource update) would be lost. Any other transport's connection is wrapped (taskConn).
func withTaskTracking(t sdk.Transport, tt *taskTools) sdk.Transport {
	st, ok := t.(*sdk.StreamableClientTransport)
	if !ok {
		return taskTransport{next: t, tt: tt}
	}
	c := *st
	hc := http.DefaultClient
	if st.HTTPClient != nil {
		hc = st.HTTPClient
	}
	h2 := *hc
	base := h2.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	h2.Transport = &taskSniffer{base: base, tt: tt}
	c.HTTPClient = &h2
	return &c
}

// taskSniffer reads the answer to each tools/list POST as the client reads it (a JSON body or
// an event stream) and reports it to tt; everything passes through unchanged.
type taskSniffer struct {
	base http.RoundTripper
	tt   *taskTools
}

// maxSniffBytes bounds what is kept of one tools/list answer; a longer one is not read for
// task support (its tools stay listed, and a call that needs a task fails upstream).
const maxSniffBytes = 16 << 20

func (s *taskSniffer) RoundTrip(r *http.Request) (*http.Response, error) {
	id, ok := toolsListID(r)
	resp, err := s.base.RoundTrip(r)
	if err != nil || !ok || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	sse := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	resp.Body = &sniffBody{ReadCloser: resp.Body, id: id, sse: sse, tt: s.tt}
	return resp, nil
}

// toolsListID is the id of the tools/list request r's body holds, if it holds one; the body is
// put back as it was.
func toolsListID(r *http.Request) (json.RawMessage, bool) {
	if r.Method != http.MethodPost || r.GetBody == nil {
		return nil, false
	}
	b, err := r.GetBody()
	if err != nil {
		return nil, false
	}
	defer b.Close()
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if json.NewDecoder(io.LimitReader(b, 1<<20)).Decode(&m) != nil || m.Method != "tools/list" || m.ID == nil {
		return nil, false
	}
	return m.ID, true
}

// sniffBody passes a tools/list answer through and reports the response with the request's id
// once it has been read whole (a JSON body) or its event has (a stream).
type sniffBody struct {
	io.ReadCloser
	id   json.RawMessage
	sse  bool
	tt   *taskTools
	buf  bytes.Buffer
	done bool
}

func (b *sniffBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if !b.done && n > 0 {
		if b.buf.Len()+n > maxSniffBytes {
			b.done = true
			b.buf = bytes.Buffer{}
		} else {
			b.buf.Write(p[:n])
		}
	}
	if !b.done && b.sse {
		b.events()
	}
	if !b.done && !b.sse && err == io.EOF {
		b.done = true
		b.answer(b.buf.Bytes())
	}
	return n, err
}

// events takes each complete line of the stream from the buffer: a data line that is the answer
// is reported.
func (b *sniffBody) events() {
	for !b.done {
		line, err := b.buf.ReadBytes('\n')
		if err != nil {
			// Incomplete: keep it for the next read.
			rest := append([]byte(nil), line...)
			b.buf.Reset()
			b.buf.Write(rest)
			return
		}
		if data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r\n"), []byte("data:")); ok {
			b.answer(bytes.TrimSpace(data))
		}
	}
}

func (b *sniffBody) answer(msg []byte) {
	var resp struct {
		ID     json.RawMessage `json:"id"`
		Result json.RawMessage `json:"result"`
	}
	if json.Unmarshal(msg, &resp) != nil || !bytes.Equal(resp.ID, b.id) || resp.Result == nil {
		return
	}
	b.done = true
	b.tt.note(resp.Result)
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
