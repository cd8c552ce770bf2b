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
func BenchmarkDecide(b *testing.B) { benchDecide(b, nil) }

// BenchmarkDecideExporting is BenchmarkDecide with every decision also exported to a JSON lines
// file: the tailer reads the committed log beside the decisions, and should not slow them.
func BenchmarkDecideExporting(b *testing.B) {
	file := filepath.Join(b.TempDir(), "records.jsonl")
	benchDecide(b, func(c *config.Config) {
		c.Export.Sinks = []config.ExportSink{{Name: "bench", Type: "jsonl", Path: file}}
	})
}

func benchDecide(b *testing.B, edit func(*config.Config)) {
	ctx := context.Background()
	dir := b.TempDir()
	cfgPath, _, err := Init(ctx, dir)
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
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		r := httptest.NewRequest(http.MethodPost, "/v1/decide", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if err := signer.Sign(r, body); err != nil {
			b.Fatal(err)
		}
		reqs[i] = r
	}
	var next atomic.Int64
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.SetParallelism(16) // enough callers for the ledger's group commit to batch, as under load
	cpu := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, reqs[next.Add(1)-1])
			if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"ALLOW"`)) {
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
