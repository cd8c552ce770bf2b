package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
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
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tl := range res.Tools {
			names = append(names, tl.Name)
		}
		if got := strings.Join(names, ","); got != "raw__quick,raw__maybe" {
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
