// Package stdioconn carries MCP over newline-delimited JSON-RPC: the stdio legs of the gateway
// (the agent-facing side of `portcullis mcp -- CMD` and each upstream child process). It
// implements the go-sdk's exported mcp.Transport and mcp.Connection on the SDK's exported
// jsonrpc types, in place of the SDK's stdio transports, for two reasons: the SDK decodes each
// message with a decoder that allocates a fresh 32 KiB buffer, and the agent side needs lines
// that are not JSON-RPC answered with an error instead of ending the session. Its decoder reads
// keys exactly as the SDK's does and refuses what a laxer reader could interpret differently.
//
// It owns framing and decoding only. It must not import the gateway, guard, stores, app or cli.
package stdioconn

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// DefaultMaxLine is the longest message line read when Options.MaxLine is not set: the SDK's
// default frame limit.
const DefaultMaxLine = sdk.DefaultMaxLineLength

// Options configure a connection.
type Options struct {
	// MaxLine bounds one message line in bytes (without its newline); 0 means DefaultMaxLine.
	MaxLine int
	// AnswerBadLines answers a line that is not JSON (parse error), longer than MaxLine or not
	// a JSON-RPC message this transport accepts (invalid request) with a JSON-RPC error on the
	// writer and skips it; the session goes on. Without it such a line ends the connection with
	// an error, as it does with the SDK's transports. Set it where the peer is an agent; leave
	// it unset towards an upstream server, which has no use for our complaints.
	AnswerBadLines bool
}

// Transport is an sdk.Transport over a reader and a writer, such as the wrapper's stdin and
// stdout.
type Transport struct {
	Reader io.Reader
	Writer io.Writer
	// Closer, if set, is closed when the connection is; the reader and writer are not.
	Closer io.Closer
	Options
}

var _ sdk.Transport = (*Transport)(nil)

// Connect implements sdk.Transport. It starts the goroutine that reads Reader.
func (t *Transport) Connect(context.Context) (sdk.Connection, error) {
	return New(t.Reader, t.Writer, t.Closer, t.Options), nil
}

// Conn is an sdk.Connection that reads one JSON-RPC message or batch per line from a reader and
// writes one per line to a writer.
type Conn struct {
	w       io.Writer
	closer  io.Closer
	maxLine int
	answer  bool

	// incoming carries what the read goroutine decoded; Read selects on it and on closed, so
	// Close unblocks a Read even when the underlying read cannot be interrupted (os.Stdin).
	incoming chan decoded
	closed   chan struct{}

	closeOnce sync.Once
	closeErr  error

	// queue holds the rest of a batch; only Read touches it (the SDK reads from one goroutine).
	queue []jsonrpc.Message

	writeMu sync.Mutex // one message per write, in order

	// The SDK's own stdio connection refuses batches once a protocol version of 2025-06-18 or
	// later is negotiated, learning the version through a hook it keeps to itself; this
	// connection learns it from the result of the first initialize request it reads.
	sessionMu       sync.Mutex
	initID          jsonrpc.ID // id of the first initialize request read, until answered
	protocolVersion string

	// batches maps each request of an incoming batch, by id, to the batch, so that the
	// responses go back as one array as JSON-RPC requires.
	batchMu sync.Mutex
	batches map[jsonrpc.ID]*batch

	// inflight holds, on an agent-facing connection, the ids of the requests read and not yet
	// answered, each true once the peer cancelled it (notifications/cancelled): such a request
	// is not answered (MCP: the receiver of a cancellation should not respond). Only ids in
	// flight are recorded, so a flood of cancellations for made-up ids grows nothing.
	inflightMu sync.Mutex
	inflight   map[jsonrpc.ID]bool
}

var _ sdk.Connection = (*Conn)(nil)

type decoded struct {
	msgs  []jsonrpc.Message
	batch bool
	err   error
}

type batch struct {
	pending   map[jsonrpc.ID]int // request id → index in responses
	responses []*jsonrpc.Response
}

// New starts reading r and returns the connection. closer, if not nil, is closed by Close.
func New(r io.Reader, w io.Writer, closer io.Closer, opts Options) *Conn {
	c := &Conn{
		w:        w,
		closer:   closer,
		maxLine:  opts.MaxLine,
		answer:   opts.AnswerBadLines,
		incoming: make(chan decoded),
		closed:   make(chan struct{}),
	}
	if c.maxLine <= 0 {
		c.maxLine = DefaultMaxLine
	}
	go c.readLoop(r)
	return c
}

// SessionID implements sdk.Connection: a stream has no session id.
func (c *Conn) SessionID() string { return "" }

// readLoop decodes lines until r fails or ends, or the connection closes. A goroutine that
// is blocked in r.Read when the connection closes stays so until r returns; that is only the
// case for a reader Close cannot interrupt, like the process's stdin.
func (c *Conn) readLoop(r io.Reader) {
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		var sc *idScan
		if c.answer {
			sc = &idScan{}
		}
		line, err := readLine(br, c.maxLine, sc)
		if errors.Is(err, errLineTooLong) {
			if !c.answer {
				c.deliver(decoded{err: fmt.Errorf("reading message: %w", err)})
				return
			}
			// Answered with the request's id when it can be read from the stream, so the
			// client matches the error instead of waiting for its own timeout.
			if c.answerErrorID(sc.id(), jsonrpc.CodeInvalidRequest, fmt.Sprintf("message exceeds %d bytes", c.maxLine)) != nil {
				return
			}
			continue
		}
		if err != nil && err != io.EOF {
			c.deliver(decoded{err: err})
			return
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			var d decoded
			d.msgs, d.batch, d.err = decodeLine(line)
			switch {
			case d.err == nil:
				if !c.deliver(d) {
					return
				}
			case c.answer:
				code, msg := jsonrpc.CodeInvalidRequest, "invalid request: "+d.err.Error()
				if errors.Is(d.err, errSyntax) {
					code, msg = jsonrpc.CodeParseError, "parse error: not JSON"
				}
				if c.answerError(int64(code), msg) != nil {
					return
				}
			default:
				c.deliver(d)
				return
			}
		}
		if err == io.EOF {
			c.deliver(decoded{err: io.EOF})
			return
		}
	}
}

// deliver hands d to Read; it reports false if the connection closed first.
func (c *Conn) deliver(d decoded) bool {
	select {
	case c.incoming <- d:
		return true
	case <-c.closed:
		return false
	}
}

var errLineTooLong = errors.New("message line too long")

// readLine reads one line without its newline into a new slice that the decoded message may
// keep, never holding more than max bytes of it: a longer line is consumed to its end and
// reported as errLineTooLong.
func readLine(br *bufio.Reader, max int, sc *idScan) ([]byte, error) {
	var buf []byte
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if tooLong && sc != nil {
			sc.feed(chunk)
		}
		if !tooLong {
			switch {
			case len(buf)+len(chunk) > max+1: // +1: the newline itself
				if sc != nil {
					// Only a line too long to decode is scanned for its id, once.
					sc.feed(buf)
					sc.feed(chunk)
				}
				tooLong, buf = true, nil
			case buf == nil && err == nil:
				// The whole line is in the buffer: one allocation of exactly its size.
				return append([]byte(nil), chunk[:len(chunk)-1]...), nil
			default:
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case tooLong && (err == nil || err == io.EOF), err == io.EOF && len(buf) > max:
			// The second case: a last line without a newline has no newline to allow for.
			return nil, errLineTooLong
		case err != nil:
			return buf, err
		}
		return bytes.TrimSuffix(buf, []byte("\n")), nil
	}
}

// Read implements sdk.Connection.
func (c *Conn) Read(ctx context.Context) (jsonrpc.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(c.queue) > 0 {
		msg := c.queue[0]
		c.queue = c.queue[1:]
		return msg, nil
	}
	for {
		var d decoded
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.closed:
			return nil, io.EOF
		case d = <-c.incoming:
		}
		if d.err != nil {
			return nil, d.err
		}
		err := c.accept(d)
		if err == nil {
			if c.answer {
				c.track(d.msgs)
			}
			c.queue = d.msgs[1:]
			return d.msgs[0], nil
		}
		if !c.answer {
			return nil, err
		}
		if werr := c.answerError(jsonrpc.CodeInvalidRequest, "invalid request: "+err.Error()); werr != nil {
			return nil, werr
		}
	}
}

// track records the requests in msgs as in flight and marks those a cancellation in msgs
// names as cancelled. initialize cannot be cancelled (MCP), so it is not tracked.
func (c *Conn) track(msgs []jsonrpc.Message) {
	c.inflightMu.Lock()
	defer c.inflightMu.Unlock()
	for _, m := range msgs {
		req, ok := m.(*jsonrpc.Request)
		if !ok {
			continue
		}
		if req.ID.IsValid() {
			if req.Method != "initialize" {
				if c.inflight == nil {
					c.inflight = map[jsonrpc.ID]bool{}
				}
				c.inflight[req.ID] = false
			}
			continue
		}
		if req.Method != "notifications/cancelled" {
			continue
		}
		var p struct {
			RequestID any `json:"requestId"`
		}
		if json.Unmarshal(req.Params, &p) != nil {
			continue
		}
		id, err := jsonrpc.MakeID(p.RequestID)
		if err != nil || !id.IsValid() {
			continue
		}
		if _, ok := c.inflight[id]; ok {
			c.inflight[id] = true
		}
	}
}

// answered forgets resp's request and reports whether the peer cancelled it.
func (c *Conn) answered(resp *jsonrpc.Response) (cancelled bool) {
	c.inflightMu.Lock()
	defer c.inflightMu.Unlock()
	cancelled = c.inflight[resp.ID]
	delete(c.inflight, resp.ID)
	return cancelled
}

// batchCutoff is the first protocol version without JSON-RPC batches.
const batchCutoff = "2025-06-18"

// accept checks what the read goroutine decoded against the session: a batch must be allowed by
// the negotiated protocol version and its request ids must be new. It records an initialize
// request, whose answer tells the protocol version.
func (c *Conn) accept(d decoded) error {
	c.sessionMu.Lock()
	version := c.protocolVersion
	if !c.initID.IsValid() && version == "" {
		for _, m := range d.msgs {
			if req, ok := m.(*jsonrpc.Request); ok && req.Method == "initialize" && req.ID.IsValid() {
				c.initID = req.ID
				break
			}
		}
	}
	c.sessionMu.Unlock()
	if !d.batch {
		return nil
	}
	if version >= batchCutoff {
		return fmt.Errorf("JSON-RPC batches are not supported in protocol version %s", version)
	}
	b := &batch{pending: map[jsonrpc.ID]int{}}
	for _, m := range d.msgs {
		if req, ok := m.(*jsonrpc.Request); ok && req.ID.IsValid() {
			if _, dup := b.pending[req.ID]; dup {
				return fmt.Errorf("batch repeats request id %v", req.ID.Raw())
			}
			b.pending[req.ID] = len(b.responses)
			b.responses = append(b.responses, nil)
		}
	}
	if len(b.pending) == 0 {
		return nil
	}
	c.batchMu.Lock()
	defer c.batchMu.Unlock()
	for id := range b.pending {
		if _, dup := c.batches[id]; dup {
			return fmt.Errorf("batch repeats the id %v of a request in progress", id.Raw())
		}
	}
	if c.batches == nil {
		c.batches = map[jsonrpc.ID]*batch{}
	}
	for id := range b.pending {
		c.batches[id] = b
	}
	return nil
}

// Write implements sdk.Connection.
func (c *Conn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if resp, ok := msg.(*jsonrpc.Response); ok {
		c.noteInitialized(resp)
		cancelled := c.answered(resp)
		if complete, inBatch := c.updateBatch(resp, cancelled); inBatch {
			if len(complete) == 0 {
				return nil
			}
			return c.writeBatch(complete)
		}
		if cancelled {
			return nil
		}
	}
	data, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return fmt.Errorf("encoding message: %w", err)
	}
	return c.writeLine(data)
}

// noteInitialized learns the negotiated protocol version from the answer to initialize.
func (c *Conn) noteInitialized(resp *jsonrpc.Response) {
	c.sessionMu.Lock()
	defer c.sessionMu.Unlock()
	if !c.initID.IsValid() || resp.ID != c.initID {
		return
	}
	c.initID = jsonrpc.ID{}
	var res struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if resp.Error == nil && json.Unmarshal(resp.Result, &res) == nil && res.ProtocolVersion != "" {
		c.protocolVersion = res.ProtocolVersion
	}
}

// updateBatch records resp if it answers a request of a batch; it returns the batch's
// responses once they are all in, without those to cancelled requests (none at all when every
// request was cancelled: JSON-RPC sends no empty array).
func (c *Conn) updateBatch(resp *jsonrpc.Response, cancelled bool) (complete []*jsonrpc.Response, inBatch bool) {
	c.batchMu.Lock()
	defer c.batchMu.Unlock()
	b, ok := c.batches[resp.ID]
	if !ok {
		return nil, false
	}
	if !cancelled {
		b.responses[b.pending[resp.ID]] = resp
	}
	delete(b.pending, resp.ID)
	delete(c.batches, resp.ID)
	if len(b.pending) > 0 {
		return nil, true
	}
	for _, r := range b.responses {
		if r != nil {
			complete = append(complete, r)
		}
	}
	return complete, true
}

func (c *Conn) writeBatch(resps []*jsonrpc.Response) error {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, r := range resps {
		data, err := jsonrpc.EncodeMessage(r)
		if err != nil {
			return fmt.Errorf("encoding batch response: %w", err)
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(data)
	}
	buf.WriteByte(']')
	return c.writeLine(buf.Bytes())
}

// writeLine writes data and a newline in one write, so that concurrent messages never mix.
func (c *Conn) writeLine(data []byte) error {
	data = append(data, '\n')
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	select {
	case <-c.closed:
		return sdk.ErrConnectionClosed
	default:
	}
	_, err := c.w.Write(data)
	return err
}

// answerError tells the peer that a line was refused. JSON-RPC answers a message whose id could
// not be read with a null id.
func (c *Conn) answerError(code int64, msg string) error {
	return c.answerErrorID(nil, code, msg)
}

// answerErrorID is answerError with the request's id (nil: null).
func (c *Conn) answerErrorID(id json.RawMessage, code int64, msg string) error {
	if id == nil {
		id = json.RawMessage("null")
	}
	m, _ := json.Marshal(msg)
	return c.writeLine(fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"error":{"code":%d,"message":%s}}`, id, code, m))
}

// Close implements sdk.Connection: it unblocks Read at once, then closes the closer (which may
// take a while: a child process gets time to exit).
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		// Not under writeMu: a write blocked on a peer that stopped reading must not hold up
		// Close, which is what unblocks it (by closing the child's stdin).
		close(c.closed)
		if c.closer != nil {
			c.closeErr = c.closer.Close()
		}
	})
	return c.closeErr
}
