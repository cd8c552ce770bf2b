package stdioconn

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// peer is the other end of a connection under test: it writes lines the connection reads and
// reads the lines the connection writes.
type peer struct {
	out   chan string // to the connection, in order, written by one goroutine
	lines chan string // from the connection
}

// send queues lines: the connection reads one message ahead only, so writing them here could
// block the test.
func (p *peer) send(t *testing.T, lines ...string) {
	t.Helper()
	for _, l := range lines {
		p.out <- l
	}
}

func (p *peer) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatal("connection output closed")
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no output line")
	}
	return ""
}

// closers closes pipes when the connection closes, which ends its read goroutine.
type closers []io.Closer

func (cs closers) Close() error {
	for _, c := range cs {
		_ = c.Close()
	}
	return nil
}

func newConn(t *testing.T, opts Options) (*Conn, *peer) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &peer{out: make(chan string, 100), lines: make(chan string, 100)}
	go func() {
		defer inW.Close()
		for l := range p.out {
			if _, err := io.WriteString(inW, l+"\n"); err != nil {
				return
			}
		}
	}()
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(outR)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	c := New(inR, outW, closers{inR, outW}, opts)
	t.Cleanup(func() { close(p.out); _ = c.Close() })
	return c, p
}

func read(t *testing.T, c *Conn) jsonrpc.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return m
}

func mustID(t *testing.T, v any) jsonrpc.ID {
	t.Helper()
	id, err := jsonrpc.MakeID(v)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestConnRoundTrip(t *testing.T) {
	c, p := newConn(t, Options{})
	in := []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`,
		`{"jsonrpc":"2.0","id":"s-1","method":"tools/list"}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"result":{"content":[]}}`,
		`{"jsonrpc":"2.0","id":"s-2","error":{"code":-32601,"message":"method not found"}}`,
	}
	p.send(t, in...)
	var got []jsonrpc.Message
	for range in {
		got = append(got, read(t, c))
	}
	if diff := cmp.Diff(in, encode(t, got)); diff != "" {
		t.Errorf("read (-want +got):\n%s", diff)
	}
	if req, ok := got[0].(*jsonrpc.Request); !ok || req.ID != mustID(t, float64(1)) || req.Method != "tools/call" {
		t.Errorf("first message: %#v", got[0])
	}

	ctx := context.Background()
	out := []jsonrpc.Message{
		&jsonrpc.Request{ID: mustID(t, "up-1"), Method: "sampling/createMessage", Params: json.RawMessage(`{"x":1}`)},
		&jsonrpc.Request{Method: "notifications/progress", Params: json.RawMessage(`{}`)},
		&jsonrpc.Response{ID: mustID(t, float64(1)), Result: json.RawMessage(`{"content":[{"type":"text","text":"hi"}]}`)},
		&jsonrpc.Response{ID: mustID(t, "s-1"), Error: &jsonrpc.Error{Code: -32603, Message: "internal"}},
	}
	for _, m := range out {
		if err := c.Write(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	want := encode(t, out)
	for i := range out {
		if l := p.next(t); l != want[i] {
			t.Errorf("line %d = %s, want %s", i, l, want[i])
		}
	}
}

// TestConnBadLinesAnswered: towards an agent, a line that is not an acceptable message is
// answered and skipped, and the session goes on.
func TestConnBadLinesAnswered(t *testing.T) {
	c, p := newConn(t, Options{MaxLine: 100, AnswerBadLines: true})
	p.send(t,
		`{not json`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"text":"`+strings.Repeat("x", 100)+`"}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/list","METHOD":"tools/call"}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/list","method":"tools/call"}`,
		`42`,
		``,
		`   `,
		`{"jsonrpc":"2.0","id":4,"method":"ping"}`,
	)
	if got := encode(t, []jsonrpc.Message{read(t, c)}); got[0] != `{"jsonrpc":"2.0","id":4,"method":"ping"}` {
		t.Errorf("read %s", got[0])
	}
	for _, want := range []struct {
		code int64
		text string
		id   string // an oversized line is answered with its id
	}{{-32700, "parse error", "null"}, {-32600, "exceeds 100 bytes", "1"}, {-32600, "only by case", "null"}, {-32600, "duplicate", "null"}, {-32600, "object", "null"}} {
		l := p.next(t)
		var resp struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   jsonrpc.Error   `json:"error"`
		}
		if err := json.Unmarshal([]byte(l), &resp); err != nil {
			t.Fatalf("answer %q: %v", l, err)
		}
		if resp.JSONRPC != "2.0" || string(resp.ID) != want.id || resp.Error.Code != want.code || !strings.Contains(resp.Error.Message, want.text) {
			t.Errorf("answer %s, want code %d containing %q", l, want.code, want.text)
		}
	}
}

// TestConnBadLineEnds: towards an upstream a bad line ends the connection, as with the SDK.
func TestConnBadLineEnds(t *testing.T) {
	for _, line := range []string{`{not json`, `{"jsonrpc":"2.0","id":1,"Result":{}}`, `{"jsonrpc":"2.0","id":1,"result":"` + strings.Repeat("x", 100) + `"}`} {
		c, p := newConn(t, Options{MaxLine: 64})
		p.send(t, line)
		if m, err := c.Read(context.Background()); err == nil {
			t.Errorf("%s: read %#v", line, m)
		}
	}
}

func TestConnEOF(t *testing.T) {
	c := New(strings.NewReader("{\"jsonrpc\":\"2.0\",\"method\":\"a\"}\r\n\n{\"jsonrpc\":\"2.0\",\"method\":\"b\"}"), io.Discard, nil, Options{})
	defer c.Close()
	var got []jsonrpc.Message
	for range 2 {
		got = append(got, read(t, c))
	}
	if diff := cmp.Diff([]string{`{"jsonrpc":"2.0","method":"a"}`, `{"jsonrpc":"2.0","method":"b"}`}, encode(t, got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := c.Read(context.Background()); err != io.EOF {
		t.Errorf("at end: %v, want EOF", err)
	}
}

func TestConnBatch(t *testing.T) {
	c, p := newConn(t, Options{})
	p.send(t, `[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":"two","method":"b"}]`)
	var got []jsonrpc.Message
	for range 3 {
		got = append(got, read(t, c))
	}
	if diff := cmp.Diff([]string{`{"jsonrpc":"2.0","id":1,"method":"a"}`, `{"jsonrpc":"2.0","method":"n"}`, `{"jsonrpc":"2.0","id":"two","method":"b"}`}, encode(t, got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	ctx := context.Background()
	// Answered out of order; the batch answer keeps the requests' order and comes when complete.
	if err := c.Write(ctx, &jsonrpc.Response{ID: mustID(t, "two"), Result: json.RawMessage(`2`)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, &jsonrpc.Request{Method: "notifications/message", Params: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if l := p.next(t); l != `{"jsonrpc":"2.0","method":"notifications/message","params":{}}` {
		t.Errorf("first line %s: the batch answer came before it was complete", l)
	}
	if err := c.Write(ctx, &jsonrpc.Response{ID: mustID(t, float64(1)), Result: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	if l, want := p.next(t), `[{"jsonrpc":"2.0","id":1,"result":1},{"jsonrpc":"2.0","id":"two","result":2}]`; l != want {
		t.Errorf("batch answer %s, want %s", l, want)
	}
	// A batch that repeats an id is refused.
	p.send(t, `[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":1,"method":"b"}]`)
	if m, err := c.Read(ctx); err == nil {
		t.Errorf("read %#v from a batch with a repeated id", m)
	}
}

// TestConnBatchByProtocolVersion: like the SDK's connection, batches are refused once the
// answer to initialize names 2025-06-18 or later.
func TestConnBatchByProtocolVersion(t *testing.T) {
	batch := `[{"jsonrpc":"2.0","id":2,"method":"ping"}]`
	for _, tt := range []struct {
		version string
		allowed bool
	}{{"2025-03-26", true}, {"2025-06-18", false}, {"2025-11-25", false}} {
		t.Run(tt.version, func(t *testing.T) {
			c, p := newConn(t, Options{AnswerBadLines: true})
			p.send(t, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+tt.version+`"}}`)
			read(t, c)
			if err := c.Write(context.Background(), &jsonrpc.Response{ID: mustID(t, float64(1)), Result: json.RawMessage(`{"protocolVersion":"` + tt.version + `"}`)}); err != nil {
				t.Fatal(err)
			}
			p.next(t)
			p.send(t, batch, `{"jsonrpc":"2.0","id":3,"method":"ping"}`)
			got := encode(t, []jsonrpc.Message{read(t, c)})[0]
			if tt.allowed {
				if got != `{"jsonrpc":"2.0","id":2,"method":"ping"}` {
					t.Errorf("read %s, want the batch's request", got)
				}
				return
			}
			if got != `{"jsonrpc":"2.0","id":3,"method":"ping"}` {
				t.Errorf("read %s, want the request after the refused batch", got)
			}
			if l := p.next(t); !strings.Contains(l, "-32600") || !strings.Contains(l, "batches") {
				t.Errorf("answer to the batch: %s", l)
			}
		})
	}
}

// blockingReader never returns until released, like a stdin nobody writes to.
type blockingReader chan struct{}

func (b blockingReader) Read([]byte) (int, error) {
	<-b
	return 0, io.EOF
}

func TestConnCloseUnblocksRead(t *testing.T) {
	release := make(blockingReader)
	defer close(release)
	c := New(release, io.Discard, nil, Options{})
	done := make(chan error)
	go func() {
		_, err := c.Read(context.Background())
		done <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != io.EOF {
			t.Errorf("Read after Close: %v, want EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if err := c.Write(context.Background(), &jsonrpc.Request{Method: "n"}); !errors.Is(err, sdk.ErrConnectionClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestConnContextDone(t *testing.T) {
	release := make(blockingReader)
	defer close(release)
	c := New(release, io.Discard, nil, Options{})
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Read: %v", err)
	}
	if err := c.Write(ctx, &jsonrpc.Request{Method: "n"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Write: %v", err)
	}
}

// TestSDKSession runs an SDK client and server against each other over two of these connections.
func TestSDKSession(t *testing.T) {
	ctx := context.Background()
	aR, aW := io.Pipe() // client → server
	bR, bW := io.Pipe() // server → client
	srv := sdk.NewServer(&sdk.Implementation{Name: "s", Version: "1"}, nil)
	type args struct {
		Text string `json:"text"`
	}
	sdk.AddTool(srv, &sdk.Tool{Name: "echo"}, func(_ context.Context, _ *sdk.CallToolRequest, a args) (*sdk.CallToolResult, any, error) {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: a.Text}}}, nil, nil
	})
	ss, err := srv.Connect(ctx, &Transport{Reader: aR, Writer: bW, Closer: closers{aR, bW}, Options: Options{AnswerBadLines: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "c", Version: "1"}, nil).Connect(ctx, &Transport{Reader: bR, Writer: aW, Closer: closers{bR, aW}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "héllo \"world\"\n"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Content) != 1 || res.Content[0].(*sdk.TextContent).Text != "héllo \"world\"\n" {
		t.Errorf("result %#v", res.Content)
	}
	if _, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "missing"}); err == nil {
		t.Error("calling a missing tool succeeded")
	}
	if err := cs.Close(); err != nil {
		t.Errorf("client close: %v", err)
	}
	if err := ss.Wait(); err != nil && !errors.Is(err, io.EOF) {
		t.Errorf("server session: %v", err)
	}
}

func TestCommand(t *testing.T) {
	conn, err := (&Command{Cmd: exec.Command("cat")}).Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := conn.(*Conn)
	msg := &jsonrpc.Request{ID: mustID(t, "x"), Method: "ping", Params: json.RawMessage(`{}`)}
	if err := c.Write(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if got := encode(t, []jsonrpc.Message{read(t, c)}); got[0] != encode(t, []jsonrpc.Message{msg})[0] {
		t.Errorf("echoed %s", got[0])
	}
	// cat exits when its stdin closes: a clean exit.
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestCommandTerminate: a child that ignores its stdin closing gets SIGTERM; one that ignores
// SIGTERM too is killed.
func TestCommandTerminate(t *testing.T) {
	for _, tt := range []struct{ script, want string }{
		{"exec sleep 60", "signal: terminated"},
		{`trap "" TERM; exec sleep 60`, "signal: killed"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			conn, err := (&Command{Cmd: exec.Command("sh", "-c", tt.script), TerminateDuration: 100 * time.Millisecond}).Connect(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// Let the shell set its trap before it is signalled.
			time.Sleep(200 * time.Millisecond)
			if err := conn.Close(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Close: %v, want %q", err, tt.want)
			}
			if _, err := conn.Read(context.Background()); err != io.EOF {
				t.Errorf("Read after Close: %v", err)
			}
		})
	}
}

func TestCommandStartFails(t *testing.T) {
	if _, err := (&Command{Cmd: exec.Command("/nonexistent/server")}).Connect(context.Background()); err == nil {
		t.Error("Connect succeeded")
	}
}

// FuzzConn feeds arbitrary input to an agent-facing connection: it must read to the end without
// failing, deliver only messages whose line fits the limit, and answer everything else with
// JSON-RPC errors, one per line.
func FuzzConn(f *testing.F) {
	for _, s := range []string{
		"{\"jsonrpc\":\"2.0\",\"method\":\"a\"}\n{x\n",
		"\n\n  \r\n",
		strings.Repeat("a", 100),
		"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"}]\r\n{\"a\":\"\\u0000\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"Method\":\"b\"}",
	} {
		f.Add(s)
	}
	const max = 64
	f.Fuzz(func(t *testing.T, s string) {
		var out strings.Builder
		c := New(strings.NewReader(s), &out, nil, Options{MaxLine: max, AnswerBadLines: true})
		defer c.Close()
		for {
			m, err := c.Read(context.Background())
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if enc := encode(t, []jsonrpc.Message{m}); len(enc[0]) == 0 {
				t.Fatal("empty message")
			}
		}
		for l := range strings.SplitSeq(strings.TrimSuffix(out.String(), "\n"), "\n") {
			if l == "" && out.Len() == 0 {
				continue
			}
			var resp struct {
				ID    json.RawMessage `json:"id"`
				Error *jsonrpc.Error  `json:"error"`
			}
			if err := json.Unmarshal([]byte(l), &resp); err != nil || resp.Error == nil || string(resp.ID) != "null" {
				t.Fatalf("answer %q is not a JSON-RPC error", l)
			}
		}
		// Every delivered message came from a line of at most max bytes.
		for l := range strings.SplitSeq(s, "\n") {
			if len(bytes.TrimSpace([]byte(l))) > 0 && len(l) > max {
				if _, _, err := decodeLine([]byte(l)); err == nil && !strings.Contains(out.String(), "exceeds") {
					t.Fatalf("oversized line %q not answered", l)
				}
			}
		}
	})
}

// TestConnCancelledNotAnswered: on an agent-facing connection the answer to a request the peer
// cancelled is not written, alone or in a batch (a batch whose every request was cancelled gets
// no answer at all, never an empty array); a cancellation naming no request in flight changes
// nothing, so a later request reusing an id is answered.
func TestConnCancelledNotAnswered(t *testing.T) {
	ctx := context.Background()
	c, p := newConn(t, Options{AnswerBadLines: true})
	write := func(id any, result string) {
		t.Helper()
		if err := c.Write(ctx, &jsonrpc.Response{ID: mustID(t, id), Result: json.RawMessage(result)}); err != nil {
			t.Fatal(err)
		}
	}
	// Batches are for protocol versions before 2025-06-18 only; nothing was negotiated here.
	p.send(t, `[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":2,"method":"b"}]`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}`)
	for range 4 {
		read(t, c)
	}
	write(float64(1), `1`)
	write(float64(2), `2`)
	if l, want := p.next(t), `[{"jsonrpc":"2.0","id":2,"result":2}]`; l != want {
		t.Errorf("batch answer %s, want %s", l, want)
	}
	p.send(t, `[{"jsonrpc":"2.0","id":3,"method":"a"}]`, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}`,
		`{"jsonrpc":"2.0","id":"s","method":"a"}`, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"s"}}`,
		`{"jsonrpc":"2.0","id":7,"method":"a"}`)
	for range 5 {
		read(t, c)
	}
	write(float64(3), `3`)
	write("s", `4`)
	write(float64(7), `7`)
	if l, want := p.next(t), `{"jsonrpc":"2.0","id":7,"result":7}`; l != want {
		t.Errorf("first line after cancelled answers %s, want %s", l, want)
	}
}
