package inspect

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"github.com/portcullis-ai/portcullis/internal/inspect/classifier"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// benchArgs is a typical 1 KiB argument set: a few short identifiers, a URL, a path, a sentence
// of prose and a longer free-text field — what an agent sends to an ordinary tool.
func benchArgs() []Value {
	vals := []Value{
		testValue("$.customer_id", "customer_id", "cus_8842"),
		testValue("$.region", "region", "eu-west-1"),
		testValue("$.url", "url", "https://api.example.com/v2/orders?status=open&limit=50"),
		testValue("$.path", "path", "reports/2026/q3/summary.csv"),
		testValue("$.subject", "subject", "Re: Quarterly numbers for the board meeting"),
		testValue("$.contact", "contact", "Reach me at +1 415 555 0100 or jo@example.org"),
	}
	n := 0
	for _, v := range vals {
		n += len(v.Raw)
	}
	body := strings.Repeat("The team's review found that shipping times improved, and we'd like to share the figures (see the attached sheet). ", 10)
	return append(vals, testValue("$.body", "body", body[:1024-n]))
}

func benchDetector(b *testing.B, d Detector) {
	vals := benchArgs()
	n := 0
	for _, v := range vals {
		n += len(v.Raw)
	}
	c := &Call{Tool: "send_report", Direction: Request, Size: n}
	found := 0
	report := func(Finding) { found++ }
	b.SetBytes(int64(n))
	b.ReportAllocs()
	start := processCPU()
	iters := 0
	for b.Loop() {
		for i := range vals {
			d.Inspect(c, &vals[i], report)
		}
		iters++
	}
	// CPU time beside wall time: on a shared, loaded machine wall time measures the neighbours.
	if used := processCPU() - start; used > 0 && iters > 0 {
		b.ReportMetric(float64(used)/float64(iters), "cpu-ns/op")
	}
}

func BenchmarkSQL(b *testing.B) { benchDetector(b, sqlDetector{}) }

// benchResult1MiB wraps a 1 MiB string as an MCP text result, inspected in the response
// direction (where tool results are).
func benchResult1MiB(b *testing.B, text string) {
	raw, err := json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": text}}})
	if err != nil {
		b.Fatal(err)
	}
	e := New(Config{MaxBytes: 8 << 20, TimeBudget: time.Minute})
	ctx := context.Background()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	start := processCPU()
	iters := 0
	for b.Loop() {
		if _, err := e.Inspect(ctx, "read_file", Response, raw); err != nil {
			b.Fatal(err)
		}
		iters++
	}
	if iters > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(iters)/float64(len(raw)), "ns/byte")
		if used := processCPU() - start; used > 0 {
			b.ReportMetric(float64(used)/float64(iters), "cpu-ns/op")
		}
	}
}

// BenchmarkInspectText1MiB: prose, the ordinary large result (a file read).
func BenchmarkInspectText1MiB(b *testing.B) {
	para := "The team's review found that shipping times improved, and we'd like to share the figures (see the attached sheet).\n"
	benchResult1MiB(b, strings.Repeat(para, 1<<20/len(para)+1)[:1<<20])
}

// BenchmarkInspectBase641MiB: base64 of random bytes as text (an encoded file a server returns
// as text rather than as a declared blob) — the shape whose chance matches once made the
// exfiltration patterns superlinear.
func BenchmarkInspectBase641MiB(b *testing.B) {
	buf := make([]byte, 3<<18)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	benchResult1MiB(b, base64.StdEncoding.EncodeToString(buf)[:1<<20])
}

// BenchmarkInspectRandom1MiB: random printable ASCII with spaces and newlines (noise: logs,
// minified data).
func BenchmarkInspectRandom1MiB(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 1<<20)
	for i := range buf {
		switch n := r.IntN(100); {
		case n < 12:
			buf[i] = ' '
		case n < 14:
			buf[i] = '\n'
		default:
			buf[i] = byte(33 + r.IntN(94))
		}
	}
	benchResult1MiB(b, string(buf))
}

// BenchmarkModelScore is the classifier alone on 64 KiB of prose.
func BenchmarkModelScore(b *testing.B) {
	m, err := classifier.Default()
	if err != nil {
		b.Fatal(err)
	}
	para := "the team's review found that shipping times improved, and we'd like to share the figures (see the attached sheet).\n"
	text := strings.Repeat(para, 64<<10/len(para)+1)[:64<<10]
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		m.Score(text)
	}
	if c := processCPU() - cpu; c > 0 {
		b.ReportMetric(float64(c)/float64(b.N)/1000, "cpu-µs/op")
	}
}
