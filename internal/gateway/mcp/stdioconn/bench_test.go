package stdioconn

import (
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// callLine is a tools/call as an agent sends it.
const callLine = `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"up__echo","arguments":{"text":"quarterly report for the sales team"},"_meta":{"progressToken":42}}}` + "\n"

// repeat reads line over and over.
type repeat struct {
	line []byte
	off  int
}

func (r *repeat) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.line[r.off:])
		n += c
		r.off = (r.off + c) % len(r.line)
	}
	return n, nil
}

func (*repeat) Close() error { return nil }

// BenchmarkRead reads tools/call lines through this connection and through the SDK's
// IOTransport, for the CPU and allocations per message.
func BenchmarkRead(b *testing.B) {
	ctx := context.Background()
	for _, tt := range transports {
		b.Run(tt.name, func(b *testing.B) {
			conn, err := tt.new().Connect(ctx)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := conn.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
			// The read goroutine of either keeps reading the endless reader until closed.
			_ = conn.Close()
		})
	}
}

// BenchmarkWrite writes a tools/call result.
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	id, _ := jsonrpc.MakeID(float64(42))
	resp := &jsonrpc.Response{ID: id, Result: json.RawMessage(`{"content":[{"type":"text","text":"quarterly report for the sales team"}],"isError":false}`)}
	for _, tt := range transports {
		b.Run(tt.name, func(b *testing.B) {
			conn, err := tt.new().Connect(ctx)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := conn.Write(ctx, resp); err != nil {
					b.Fatal(err)
				}
			}
			_ = conn.Close()
		})
	}
}

// transports under comparison, each new one reading callLine over and over.
var transports = []struct {
	name string
	new  func() sdk.Transport
}{
	{"stdioconn", func() sdk.Transport { return &Transport{Reader: &repeat{line: []byte(callLine)}, Writer: io.Discard} }},
	{"sdk", func() sdk.Transport {
		return &sdk.IOTransport{Reader: &repeat{line: []byte(callLine)}, Writer: nopWriteCloser{io.Discard}}
	}},
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
