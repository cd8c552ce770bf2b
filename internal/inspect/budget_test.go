package inspect

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A benign 1 MiB result gets the same verdict on a starved CPU as on an idle one: the budgets
// are counted in the input (bytes, values, work), and the wall-clock guard is far above what they
// allow. Eight busy loops share one P with the inspection, so it runs at about a ninth of its
// idle speed.
func TestVerdictIndependentOfLoad(t *testing.T) {
	para := "The team's review found that shipping times improved, and we'd like to share the figures (see the attached sheet).\n"
	buf := make([]byte, 3<<18)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	text := func(s string) any { return map[string]any{"content": []any{map[string]any{"type": "text", "text": s}}} }
	// Rows of a query result: 4,000 records of two fields, 16,000 strings with their keys.
	rows := make([]any, 4000)
	for i := range rows {
		rows[i] = map[string]any{"id": fmt.Sprintf("r%05d", i), "note": para + para}
	}
	for name, v := range map[string]any{
		"text":   text(strings.Repeat(para, 1<<20/len(para)+1)[:1<<20]),
		"base64": text(base64.StdEncoding.EncodeToString(buf)[:1<<20]),
		"rows":   map[string]any{"structuredContent": map[string]any{"rows": rows}},
	} {
		t.Run(name, func(t *testing.T) {
			raw, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) < 900<<10 {
				t.Fatalf("%d bytes, want about 1 MiB", len(raw))
			}
			e := New(Config{}) // the defaults, as the gateway runs them
			ctx := context.Background()
			idle, err := e.Inspect(ctx, "read_file", Response, raw)
			if err != nil {
				t.Fatal(err)
			}
			if idle.Capped {
				t.Fatalf("idle: a benign 1 MiB result was capped: %+v", idle.Findings)
			}

			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			var stop atomic.Bool
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					n := 0
					for !stop.Load() {
						n++
					}
					_ = n
				})
			}
			loaded, err := e.Inspect(ctx, "read_file", Response, raw)
			stop.Store(true)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(idle, loaded); d != "" {
				t.Errorf("verdict changed under load (-idle +loaded):\n%s", d)
			}
		})
	}
}

// The work cap counts decoded readings too, deterministically: strings within the byte and value
// caps whose decodings push the work over MaxWork are capped, as inspection_capped.
func TestInspectWorkCap(t *testing.T) {
	blob := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("harmless words here ", 40)))
	var b strings.Builder
	b.WriteString("[")
	for i := range 10 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"` + blob + `"`)
	}
	b.WriteString("]")
	raw := json.RawMessage(b.String())
	plain := New(Config{})
	res, err := plain.Inspect(context.Background(), "t", Response, raw)
	if err != nil || res.Capped {
		t.Fatalf("default caps: capped %v, err %v", res.Capped, err)
	}
	// Room for the strings themselves but not for their decodings as well.
	capped := New(Config{MaxWork: len(raw) + len(raw)/4})
	res, err = capped.Inspect(context.Background(), "t", Response, raw)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Capped || !hasKind(res.Findings, KindCapped) || hasKind(res.Findings, KindTimeout) {
		t.Errorf("work over the cap not reported as inspection_capped: %+v", res)
	}
}
