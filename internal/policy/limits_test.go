package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTenMegabyteFile(t *testing.T) {
	// A syntactically valid policy padded with comments past the file limit.
	src := "agent_id: a\n" + strings.Repeat("# "+strings.Repeat("x", 98)+"\n", 10*1024*1024/100+1)
	if len(src) <= 10<<20 {
		t.Fatalf("test input is only %d bytes", len(src))
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "larger than the 8 MiB limit") {
		t.Errorf("Load: %v", err)
	}
	_, err = Parse("big.yaml", []byte(src))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "big.yaml:1:1: file is") {
		t.Errorf("Parse: %v", err)
	}
}

func rulesYAML(n int) string {
	var b strings.Builder
	b.Grow(n * 48)
	b.WriteString("agent_id: a\nrules:\n")
	for i := range n {
		fmt.Fprintf(&b, "- {name: r%d, tool: t%d, action: ALLOW}\n", i, i)
	}
	return b.String()
}

func TestHundredThousandRules(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 100,000 rules")
	}
	start := time.Now()
	f, err := Parse("many.yaml", []byte(rulesYAML(100_000)))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("100,000 rules parsed and compiled in %v", time.Since(start))
	if d := set.Evaluate(&Request{Agent: Agent{ID: "a"}, Tool: "t99999", Time: tue10}); d.Action != Allow || d.Rule != "r99999" {
		t.Errorf("decision %+v", d)
	}
	if d := set.Evaluate(&Request{Agent: Agent{ID: "a"}, Tool: "t100000", Time: tue10}); d.Action != Deny {
		t.Errorf("decision %+v", d)
	}
}

func TestRuleLimit(t *testing.T) {
	// The limit check itself, with a lowered limit so the test stays fast under -race.
	saved := DefaultLimits
	defer func() { DefaultLimits = saved }()
	DefaultLimits.MaxRules = 1000
	if _, err := Parse("many.yaml", []byte(rulesYAML(1000))); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	_, err := Parse("many.yaml", []byte(rulesYAML(1001)))
	if err == nil || !strings.Contains(err.Error(), "many.yaml:3:1: rules: 1001 rules, more than the limit of 1000") {
		t.Errorf("over the limit: %v", err)
	}
	// Across files of one set.
	dir := t.TempDir()
	for _, n := range []string{"a", "b"} {
		src := strings.ReplaceAll(rulesYAML(600), "agent_id: a", "agent_id: "+n)
		if err := os.WriteFile(filepath.Join(dir, n+".yaml"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err = Load(dir)
	if err == nil || !strings.Contains(err.Error(), "the set has 1200 rules, more than the limit of 1000") {
		t.Errorf("set over the limit: %v", err)
	}
}

func TestDeepNesting(t *testing.T) {
	for _, src := range []string{
		"agent_id: a\ndescription: " + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "\n",
		"agent_id: a\nx: " + strings.Repeat("{a: ", 200) + "1" + strings.Repeat("}", 200) + "\n",
		strings.Repeat("- ", 5000) + "a\n",
	} {
		_, err := Parse("deep.yaml", []byte(src))
		if err == nil {
			t.Errorf("deep nesting accepted")
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("error does not match ErrInvalid: %v", err)
		}
	}
	_, err := Parse("deep.yaml", []byte("agent_id: a\nx: "+strings.Repeat("{a: ", 40)+"1"+strings.Repeat("}", 40)+"\n"))
	if err == nil || !strings.Contains(err.Error(), "nesting deeper than 32 levels") {
		t.Errorf("err = %v", err)
	}
}

func TestAliasBomb(t *testing.T) {
	src := `agent_id: a
a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
`
	_, err := Parse("bomb.yaml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), "anchors and aliases are not allowed") {
		t.Errorf("err = %v", err)
	}
}

// TestCatastrophicRegex: a pattern that backtracking engines take exponential time on stays
// linear under RE2, in tool patterns and parameter patterns.
func TestCatastrophicRegex(t *testing.T) {
	set := mustSet(t, `agent_id: a
rules:
  - name: r
    tool: "(a+)+b"
    action: ALLOW
    conditions:
      - parameter: q
        match: "^(a|a)*(a+)+$"
`)
	long := strings.Repeat("a", 100_000) + "!"
	start := time.Now()
	d1 := set.Evaluate(&Request{Agent: Agent{ID: "a"}, Tool: strings.Repeat("a", 10_000) + "c", Time: tue10})
	d2 := set.Evaluate(&Request{Agent: Agent{ID: "a"}, Tool: "aab", Params: map[string]any{"q": long}, Time: tue10})
	d3 := set.Evaluate(&Request{Agent: Agent{ID: "a"}, Tool: "aab", Params: map[string]any{"q": strings.Repeat("a", 100_000)}, Time: tue10})
	if d1.Action != Deny || d2.Action != Deny || d3.Action != Allow {
		t.Errorf("decisions %v %v %v", d1.Action, d2.Action, d3.Action)
	}
	// Bounded, not timed: a backtracking engine would not finish this in the age of the universe.
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("took %v", el)
	}
}

func TestCELLimits(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{strings.Repeat("(", 200) + "true" + strings.Repeat(")", 200), "CEL expression does not compile"},
		{"true" + strings.Repeat(" && true", 2000), "more than the limit of 4096"},
		{"[1,2,3].map(x, [1,2,3].map(y, x*y)).size() == 'x'", "does not compile"},
	} {
		_, err := Parse("cel.yaml", []byte(oneRule("- expr: \""+tc.expr+"\"")))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("expr %.40q: err = %v, want %q", tc.expr, err, tc.want)
		}
	}
	// A runtime cost blow-up is cut off by the cost limit: the condition errors, which in an ALLOW
	// rule means "does not hold".
	set := mustSet(t, oneRule(`- expr: "params.l.all(a, params.l.all(b, params.l.all(c, a + b + c >= 0)))"`))
	l := make([]any, 200)
	for i := range l {
		l[i] = float64(i)
	}
	start := time.Now()
	d := set.Evaluate(&Request{Agent: Agent{ID: "a"}, Tool: "t", Params: map[string]any{"l": l}, Time: tue10})
	if d.Action != Deny {
		t.Errorf("decision %v, want DENY (cost limit)", d)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("took %v", el)
	}
	ex := set.Explain(&Request{Agent: Agent{ID: "a"}, Tool: "t", Params: map[string]any{"l": l}, Time: tue10})
	if len(ex.Rules) != 1 || !strings.Contains(ex.Rules[0].Conditions[0].Error, "cost") {
		t.Errorf("explanation: %+v", ex.Rules)
	}
}
