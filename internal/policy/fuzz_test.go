package policy

import (
	"errors"
	"os"
	"regexp"
	"testing"
	"time"
)

// FuzzParse: the loader never panics or hangs; whatever it accepts compiles and evaluates, with
// Explain agreeing with Evaluate; whatever it rejects is an ErrorList with positions.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"01_deny_by_default.yaml", "02_context_aware.yaml", "03_abac.yaml", "04_prose.yaml"} {
		data, err := os.ReadFile("testdata/seed/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("agent_id: a\nrules:\n  - {name: r, tool: \".*\", action: LOG, conditions: [{expr: \"threat.rank > 1\"}]}\n---\nagent_id: b\n"))
	f.Add([]byte("agent_id: a\nx: &a [*a]\n"))
	f.Add([]byte("agent_id: a\nrules: [{name: r, tool: t, action: ALLOW, conditions: [{time_of_day: {start: \"22:00\", end: \"02:00\"}}]}]"))
	req := &Request{Agent: Agent{ID: "report-generator-v1"}, Tool: "fetch_sales_data",
		Params: map[string]any{"query_type": "monthly", "date_range_days": 5.0}, Time: time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yaml", data)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not an ErrorList: %T %v", err, err)
			}
			for _, e := range list {
				if e.Pos.File != "fuzz.yaml" || e.Pos.Line < 1 {
					t.Fatalf("error without position: %v", e)
				}
			}
			return
		}
		set, err := Compile(file)
		if err != nil {
			t.Fatalf("parsed but does not compile: %v", err)
		}
		for _, p := range file.Policies {
			r := *req
			r.Agent.ID = p.AgentID
			for _, rule := range p.Rules {
				for _, pt := range rule.Tools {
					r.Tool = pt.Source
					if d, ex := set.Evaluate(&r), set.Explain(&r); d != ex.Decision {
						t.Fatalf("Evaluate %+v != Explain %+v", d, ex.Decision)
					}
				}
			}
		}
	})
}

// FuzzEvaluate: arbitrary JSON requests against the seed set never panic; a request that
// decodes gets the same decision from Evaluate and Explain.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte(`{"agent":{"id":"report-generator-v1"},"tool":"fetch_sales_data","params":{"query_type":"monthly","date_range_days":90},"time":"2026-03-10T10:00:00-04:00"}`))
	f.Add([]byte(`{"agent":{"id":"regional-sales-agent","roles":["reporting"],"permissions":["sales_read"]},"user":{"id":"u","attributes":{"region":["eu"],"clearance":"internal"}},"tool":"fetch_sales_data","params":{"region":["eu",1,null]},"time":"2026-03-10T10:00:00Z"}`))
	f.Add([]byte(`{"agent":{"id":"customer-export-agent"},"user":{"id":"u","permissions":["data_export"]},"tool":"export_customer_data","params":{"export_size_rows":1e308},"time":"2026-03-10T02:00:00-04:00","threat_level":"high","calls":[{"tool":"export_customer_data","time":"2026-03-10T01:59:00-04:00"}]}`))
	f.Add([]byte(`{"agent":{"id":"x"}}`))
	f.Add([]byte(`{`))
	set, err := Load("testdata/seed")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, _, err := DecodeRequest(data)
		if err != nil {
			return
		}
		d := set.Evaluate(req)
		if ex := set.Explain(req); ex.Decision != d {
			t.Fatalf("Evaluate %+v != Explain %+v", d, ex.Decision)
		}
	})
}

// FuzzFastMatch: the regexp-free matcher agrees with regexp on every pattern it takes over.
func FuzzFastMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"^(monthly|quarterly|annual)$", "monthly"},
		{`^/reports/[a-z0-9_-]+\.pdf$`, "/reports/a.pdf"},
		{"^[a-z0-9_]+$", "abc_1"},
		{`\.\.`, "/a/../b"},
		{"^ab", "abc"},
		{"c$", "abc"},
		{"^[a-c]{2,3}[d-f]?x*$", "abdxx"},
		{"^(a|ab)c$", "abc"},
		{"^[a-z]+[a-z]$", "ab"},
		{"(?i)^k$", "\u212a"},
		{"^a?a$", "a"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, input string) {
		re, err := regexp.Compile(pattern)
		if err != nil {
			return
		}
		m, err := newStrMatcher(pattern)
		if err != nil {
			t.Fatalf("regexp compiles %q but the matcher does not: %v", pattern, err)
		}
		if got, want := m.MatchString(input), re.MatchString(input); got != want {
			t.Fatalf("pattern %q input %q: fast %v, regexp %v (pieces %d, mode %d)", pattern, input, got, want, len(m.pieces), m.mode)
		}
	})
}

// FuzzToolPattern: the shapes the tool-pattern compiler recognises (literal, literal
// alternation, prefix, match-all) match exactly the names the whole-name regexp matches.
func FuzzToolPattern(f *testing.F) {
	for _, s := range [][2]string{
		{"fetch_sales_data", "fetch_sales_data"}, {"fetch_.*", "fetch_x"}, {"fetch_.*", "fetch_\nx"},
		{".*", ""}, {"(?s).*", "a\nb"}, {"(a|b)", "b"}, {"a|ab", "ab"}, {"tool_[0-9]+", "tool_12"},
		{"(?i)fetch", "FETCH"}, {"", ""}, {"x*", ""}, {"fetch_(?s:.*)", "fetch_\n"}, {"a.*b", "ab"},
		{".*", "a\nb"}, {"(?-s:.*)", "\n"}, {"(?-s)fetch_.*", "fetch_\n"}, {"x.+y", "x\ny"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if _, err := regexp.Compile(pattern); err != nil {
			return // the loader rejects it (see TestToolPatternCannotEscapeAnchoring)
		}
		// Tool patterns are compiled with the s flag (`.` matches a newline too: `.*` matches every
		// tool); a leading (?s) gives the pattern that meaning, and its own (?-s) still wins.
		re := regexp.MustCompile("(?s)" + pattern)
		// Oracle independent of the wrapping: leftmost-longest finds a match starting at 0 if one
		// exists, and the longest one, which spans the whole name if any does.
		re.Longest()
		ms, err := compileToolPattern(pattern)
		if err != nil {
			t.Fatalf("regexp compiles %q but the tool compiler does not: %v", pattern, err)
		}
		got := false
		for i := range ms {
			if ms[i].match(name) {
				got = true
			}
		}
		loc := re.FindStringIndex(name)
		if want := loc != nil && loc[0] == 0 && loc[1] == len(name); got != want {
			t.Fatalf("pattern %q name %q: compiled %v, regexp %v (kinds %+v)", pattern, name, got, want, ms)
		}
	})
}
