package guard

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// benchParams is about 1 KiB of arguments: nested objects, an array, numbers and plain text,
// the shape of a typical tool call.
func benchParams(extra string) string {
	var b strings.Builder
	b.WriteString(`{"title":"quarterly notes","body":"`)
	b.WriteString(strings.Repeat("revenue grew in every region this quarter; ", 14))
	b.WriteString(`","tags":["sales","q3","internal"],"owner":{"id":9007199254740993,"name":"Ada","team":"finance"},`)
	for i := range 8 {
		fmt.Fprintf(&b, `"field_%d":{"value":%d.5,"note":"entry number %d"},`, i, i, i)
	}
	b.WriteString(extra)
	b.WriteString(`"done":true}`)
	return b.String()
}

// BenchmarkCheck is one whole Check (ledger on the in-memory store) of an allowed call with
// about 1 KiB of parameters: plain, and with a member whose name is sensitive (the ledger
// redacts it) — and plain again with a candidate set in shadow (decided a second time).
func BenchmarkCheck(b *testing.B) {
	shadow := func(o *Options) { o.Shadow = o.Policies }
	for _, c := range []struct {
		name, extra string
		guard       func(*Options)
	}{{"plain", "", nil}, {"sensitive", `"password":"hunter2",`, nil}, {"shadow", "", shadow}} {
		b.Run(c.name, func(b *testing.B) {
			h := newHarnessWith(b, harnessOptions{guard: c.guard})
			ctx := context.Background()
			req := h.call("save_note", benchParams(c.extra))
			req.Agent = h.agent(b)
			b.SetBytes(int64(len(req.Params)))
			b.ReportAllocs()
			for b.Loop() {
				if d := h.g.Check(ctx, req); !d.Allowed() {
					b.Fatal(d.Action, d.Code, d.Err)
				}
			}
		})
	}
}
