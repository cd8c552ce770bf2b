package inspect

import (
	"strings"
	"testing"
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
