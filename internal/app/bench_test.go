package app

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/sdk/httpsig"
)

// BenchmarkDecide measures the server's own CPU per decision on the embedded default: a signed
// request (RFC 9421, Ed25519) with a 1 KiB argument set, inspected, evaluated and appended
// durably to the SQLite ledger — the path bench/load drives over the network, without the
// network and without the client. Requests are signed before the timer starts.
//
//	go test ./internal/app -run '^$' -bench Decide -benchtime 20000x
func BenchmarkDecide(b *testing.B) { benchDecide(b, benchShape{}, nil) }

// BenchmarkDecideKey is BenchmarkDecide with an API key instead of a signature: the per-request
// floor bench/load -api-key measures, where authentication costs little and the rest shows.
func BenchmarkDecideKey(b *testing.B) { benchDecide(b, benchShape{apiKey: true}, nil) }

// BenchmarkDecideBatch8 is BenchmarkDecideKey with 8 calls per POST /v1/decide/batch; ns/op and
// cpu-µs/op are per decided call.
func BenchmarkDecideBatch8(b *testing.B) { benchDecide(b, benchShape{apiKey: true, batch: 8}, nil) }

// benchShape is how benchDecide's requests are authenticated and grouped.
type benchShape struct {
	apiKey bool
	batch  int // calls per /v1/decide/batch request; 0: one call per /v1/decide
}

// BenchmarkDecideExporting is BenchmarkDecide with every decision also exported to a JSON lines
// file: the tailer reads the committed log beside the decisions, and should not slow them.
func BenchmarkDecideExporting(b *testing.B) {
	file := filepath.Join(b.TempDir(), "records.jsonl")
	benchDecide(b, benchShape{}, func(c *config.Config) {
		c.Export.Sinks = []config.ExportSink{{Name: "bench", Type: "jsonl", Path: file}}
	})
}

func benchDecide(b *testing.B, shape benchShape, edit func(*config.Config)) {
	ctx := context.Background()
	dir := b.TempDir()
	cfgPath, apiKey, err := Init(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	priv, _, pub, err := httpsig.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	text, _ := os.ReadFile(cfgPath)
	text = bytes.Replace(text, []byte("      roles: [reporting]\n"),
		[]byte("      roles: [reporting]\n      signing_keys:\n        - id: bench-key\n          public_key: "+pub+"\n"), 1)
	if err := os.WriteFile(cfgPath, text, 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Limits.MaxConcurrencyPerAgent = 4096
	if edit != nil {
		edit(cfg)
	}
	a, err := Open(ctx, cfg, cfgPath, slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close(ctx)
	h := a.Handler()

	body := []byte(`{"tool":"fetch_customer_names","params":{"fields":["name","country","renewal_date","account_manager","plan","seats"],"limit":250,"notes":"` +
		strings.Repeat("Quarterly review list for the customer success team. ", 15) +
		`","segment":"enterprise accounts renewed in the last quarter","sort":{"by":"renewal_date","order":"desc"}}}`)
	signer := &httpsig.Signer{KeyID: "bench-key", Key: priv}
	path, calls := "/v1/decide", 1
	if shape.batch > 0 {
		path, calls = "/v1/decide/batch", shape.batch
		body = []byte(`{"calls":[` + strings.TrimSuffix(strings.Repeat(string(body)+",", calls), ",") + `]}`)
	}
	reqs := make([]*http.Request, (b.N+calls-1)/calls)
	for i := range reqs {
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if shape.apiKey {
			r.Header.Set("Authorization", "Bearer "+apiKey)
		} else if err := signer.Sign(r, body); err != nil {
			b.Fatal(err)
		}
		reqs[i] = r
	}
	var next atomic.Int64
	b.SetBytes(int64(len(body) / calls))
	b.ReportAllocs()
	b.SetParallelism(16) // enough callers for the ledger's group commit to batch, as under load
	cpu := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// With batches, the caller whose turn starts a request sends it; the others' turns
			// are that request's other calls.
			i := next.Add(1) - 1
			if i%int64(calls) != 0 {
				continue
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, reqs[i/int64(calls)])
			if w.Code != http.StatusOK || bytes.Count(w.Body.Bytes(), []byte(`"ALLOW"`)) != calls {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
	b.StopTimer()
	if c := processCPU() - cpu; c > 0 {
		b.ReportMetric(float64(c)/float64(b.N)/1000, "cpu-µs/op")
	}
}

func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
