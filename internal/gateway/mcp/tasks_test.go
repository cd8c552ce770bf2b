package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/gateway/mcp/stdioconn"
)

// rawToolServer is an MCP server written by hand, line by line, so it can send what the go-sdk's
// server cannot: tool definitions with execution.taskSupport.
func rawToolServer(t *testing.T, tools string) sdk.Transport {
	t.Helper()
	inR, inW, outR, outW := osPipes(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer outW.Close()
		sc := bufio.NewScanner(inR)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
			}
			if json.Unmarshal(sc.Bytes(), &m) != nil || m.ID == nil {
				continue
			}
			var result string
			switch m.Method {
			case "initialize":
				result = `{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"raw","version":"1"}}`
			case "tools/list":
				result = `{"tools":` + tools + `}`
			case "tools/call":
				result = `{"content":[{"type":"text","text":"ran"}]}`
			default:
				result = `{}`
			}
			if _, err := io.WriteString(outW, `{"jsonrpc":"2.0","id":`+string(m.ID)+`,"result":`+result+"}\n"); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { inW.Close(); inR.Close(); wg.Wait(); outR.Close() })
	return &stdioconn.Transport{Reader: outR, Writer: inW, Closer: closers{inW}}
}

// A tool that requires MCP tasks (which the gateway does not proxy) is not listed, and the log
// says why; the upstream's other tools, including one where tasks are optional, are.
func TestTaskRequiredToolHidden(t *testing.T) {
	ctx := context.Background()
	const tools = `[{"name":"quick","inputSchema":{"type":"object"}},` +
		`{"name":"maybe","inputSchema":{"type":"object"},"execution":{"taskSupport":"optional"}},` +
		`{"name":"long","inputSchema":{"type":"object"},"execution":{"taskSupport":"required"}}]`
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	gw, err := New(ctx, Options{Guard: allowPort{}, CallTimeout: 10 * time.Second, Logger: log},
		[]Upstream{{Name: "raw", Transport: rawToolServer(t, tools)}})
	if err != nil {
		t.Fatal(err)
	}
	cs := connectAgent(t, gw)
	for range 2 {
		if got := listedNames(t, ctx, cs); got != "raw__quick,raw__maybe" {
			t.Errorf("listed %s, want raw__quick,raw__maybe", got)
		}
	}
	logMu.Lock()
	defer logMu.Unlock()
	if n := strings.Count(logs.String(), "requires MCP tasks"); n != 1 || !strings.Contains(logs.String(), "tool=raw__long") {
		t.Errorf("want the hidden tool logged once, got %d:\n%s", n, logs.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// rawHTTPServer is a Streamable HTTP MCP server written by hand (tool definitions with
// execution.taskSupport), answering tools/list as an event stream when sse is set. It counts the
// GET requests that open its standalone SSE stream, which it then holds open.
func rawHTTPServer(t *testing.T, tools string, sse bool) (url string, gets *atomic.Int32) {
	t.Helper()
	gets = &atomic.Int32{}
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			gets.Add(1)
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-done:
			}
			return
		}
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusOK)
			return
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		_ = json.NewDecoder(r.Body).Decode(&m)
		w.Header().Set("Mcp-Session-Id", "raw-session")
		if m.ID == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		result := `{}`
		switch m.Method {
		case "initialize":
			result = `{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"raw","version":"1"}}`
		case "tools/list":
			result = `{"tools":` + tools + `}`
		}
		msg := `{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":` + result + `}`
		if sse && m.Method == "tools/list" {
			w.Header().Set("Content-Type", "text/event-stream")
			// An unrelated event first, and the answer split over two writes.
			_, _ = io.WriteString(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\n")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "event: message\ndata: "+msg[:20])
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, msg[20:]+"\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, msg)
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv.URL, gets
}

// Over Streamable HTTP, a tool that requires tasks is hidden as over stdio (its answer read as a
// JSON body or an event stream), and the upstream connection still opens the standalone SSE
// stream, where a remote server sends what is not tied to a request: task tracking once wrapped
// the connection, which hid it from the go-sdk client, and no GET was ever sent.
func TestTaskTrackingOverHTTPKeepsTheStandaloneStream(t *testing.T) {
	const tools = `[{"name":"quick","inputSchema":{"type":"object"}},` +
		`{"name":"long","inputSchema":{"type":"object"},"execution":{"taskSupport":"required"}}]`
	for _, sse := range []bool{false, true} {
		ctx := context.Background()
		url, gets := rawHTTPServer(t, tools, sse)
		gw, err := New(ctx, Options{Guard: allowPort{}, CallTimeout: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)},
			[]Upstream{{Name: "raw", NewTransport: func() sdk.Transport {
				return &sdk.StreamableClientTransport{Endpoint: url, MaxRetries: -1}
			}}})
		if err != nil {
			t.Fatal(err)
		}
		cs := connectAgent(t, gw)
		if got := listedNames(t, ctx, cs); got != "raw__quick" {
			t.Errorf("sse=%v: listed %s, want raw__quick", sse, got)
		}
		// The go-sdk client sends the GET, and waits for its answer, within the handshake.
		if gets.Load() == 0 {
			t.Errorf("sse=%v: the upstream connection never opened the standalone SSE stream", sse)
		}
		_ = gw.Close()
	}
}

// listedNames is the agent's tools/list, names joined by commas.
func listedNames(t *testing.T, ctx context.Context, cs *sdk.ClientSession) string {
	t.Helper()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	return strings.Join(names, ",")
}
