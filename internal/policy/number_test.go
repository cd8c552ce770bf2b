package policy

import (
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"testing"
)

// TestExactNumbers: limits and equalities compare the number the tool will read, not its
// float64 neighbour. The attack: max_value 9007199254740992 (2^53) let 9007199254740993 and
// 9007199254740992.9 through, both rounding to 2^53 as float64.
func TestExactNumbers(t *testing.T) {
	num := func(s string) any { return json.Number(s) }
	tests := []struct {
		name  string
		conds string
		v     any
		want  bool
	}{
		{"max 2^53: 2^53", "max_value: 9007199254740992", num("9007199254740992"), true},
		{"max 2^53: 2^53+1", "max_value: 9007199254740992", num("9007199254740993"), false},
		{"max 2^53: 2^53+0.9", "max_value: 9007199254740992", num("9007199254740992.9"), false},
		{"max 2^53: 2^53 as 9.007199254740992e15", "max_value: 9007199254740992", num("9.007199254740992e15"), true},
		{"max 2^53: 2^53+1 as an exponent", "max_value: 9007199254740992", num("90071992547409930e-1"), false},
		{"max 2^53: int64 2^53+1", "max_value: 9007199254740992", int64(9007199254740993), false},
		{"max 2^53: uint64 max", "max_value: 9007199254740992", uint64(math.MaxUint64), false},
		{"max 2^53: float64 2^53", "max_value: 9007199254740992", float64(1 << 53), true},
		{"max 2^53+1: float64 2^53", "max_value: 9007199254740993", float64(1 << 53), true},
		{"max 2^53+1: float64 2^53+2", "max_value: 9007199254740993", float64(1<<53 + 2), false},
		{"max 2^53+1: 2^53+1", "max_value: 9007199254740993", num("9007199254740993"), true},
		{"max 2^53+1: 2^53+2", "max_value: 9007199254740993", num("9007199254740994"), false},
		{"min 0.1: 0.1", "min_value: 0.1", num("0.1"), true},
		{"min 0.1: float64 0.1 is above 1/10", "min_value: 0.1", 0.1, true},
		{"max 0.1: float64 0.1 is above 1/10", "max_value: 0.1", 0.1, false},
		{"max 0.1: 0.09999999999999999999", "max_value: 0.1", num("0.09999999999999999999"), true},
		{"max 0.1: 0.10000000000000000001", "max_value: 0.1", num("0.10000000000000000001"), false},
		{"max 100: 1e400", "max_value: 100", num("1e400"), false},
		{"min -100: -1e400", "min_value: -100", num("-1e400"), false},
		{"max 100: 1e-400", "max_value: 100", num("1e-400"), true},
		{"max 0: 1e-400", "max_value: 0", num("1e-400"), false},
		{"max 0: -0", "max_value: 0", num("-0"), true},
		{"max 1e400: 1e401", "max_value: 1e400", num("1e401"), false},
		{"max 1e400: 1e399", "max_value: 1e400", num("1e399"), true},
		{"max 1e400: float64 max", "max_value: 1e400", math.MaxFloat64, true},
		{"max 1e400: +Inf", "max_value: 1e400", math.Inf(1), false},
		{"min -1e400: -Inf", "min_value: -1e400", math.Inf(-1), false},
		{"max 100: NaN is not a number", "max_value: 100", math.NaN(), false},
		{"max 100: invalid json.Number", "max_value: 100", num("1e"), false},
		{"max 100: json.Number with a plus", "max_value: 100", num("+1"), false},
		{"max 100: huge exponent", "max_value: 100", num("1e99999999999999999999999"), false},
		{"min 100: tiny exponent", "min_value: 100", num("1e-99999999999999999999999"), false},
		{"equals 2^53: 2^53+1", "equals: 9007199254740992", num("9007199254740993"), false},
		{"equals 2^53: 2^53", "equals: 9007199254740992", num("9007199254740992"), true},
		{"equals 2^53: 2^53.0", "equals: 9007199254740992", num("9007199254740992.000"), true},
		{"equals 2^53+1: float64 2^53", "equals: 9007199254740993", float64(1 << 53), false},
		{"equals 1.5: 15e-1", "equals: 1.5", num("15e-1"), true},
		{"one_of: 2^53+1 is not listed", "one_of: [1, 9007199254740992]", num("9007199254740993"), false},
		{"one_of: 2^53 is listed", "one_of: [1, 9007199254740992]", num("9007199254740992"), true},
		{"one_of: int 1", "one_of: [1, 9007199254740992]", 1, true},
		{"equals: a string is not a number", "equals: 5", "5", false},
		{"max 0x10: 17", "max_value: 0x10", num("17"), false},
		{"max 1_000: 1000", "max_value: 1_000", num("1000"), true},
		{"max 18446744073709551616: uint64 max", "max_value: 18446744073709551616", uint64(math.MaxUint64), true},
		{"max 123456789012345678901234567890: +1", "max_value: 123456789012345678901234567890", num("123456789012345678901234567891"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSet(t, oneRule("- parameter: x\n  "+tc.conds))
			r := req(map[string]any{"x": tc.v})
			got := s.Evaluate(r).Action == Allow
			if got != tc.want {
				t.Errorf("Evaluate: allowed = %v, want %v", got, tc.want)
			}
			if ex := s.Explain(r); (ex.Action == Allow) != tc.want {
				t.Errorf("Explain: allowed = %v, want %v", ex.Action == Allow, tc.want)
			}
		})
	}
}

// TestExplainRecordsExactNumber: the explanation (and so the ledger record) shows the number as
// the tool reads it, not its float64 rounding.
func TestExplainRecordsExactNumber(t *testing.T) {
	s := mustSet(t, oneRule("- parameter: x\n  max_value: 9007199254740992"))
	ex := s.Explain(req(map[string]any{"x": json.Number("9007199254740993")}))
	if ex.Action == Allow {
		t.Fatal("2^53+1 passed max_value 2^53")
	}
	found := false
	for _, r := range ex.Rules {
		for _, c := range r.Conditions {
			if strings.Contains(c.Detail, "9007199254740993") {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("the explanation does not record the exact value: %+v", ex.Rules)
	}
}

func TestNumberLiterals(t *testing.T) {
	tests := []struct {
		conds   string
		wantErr string
	}{
		{"max_value: 017", "ambiguous number"},
		{"max_value: .inf", "invalid number"},
		{"max_value: .nan", "invalid number"},
		{`max_value: "5"`, "want a number"},
		{"max_value: 1e400", ""},
		{"max_value: -0o17", ""},
		{"equals: 0.5", ""},
	}
	for _, tc := range tests {
		_, err := Parse("t.yaml", []byte(oneRule("- parameter: x\n  "+tc.conds)))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.conds, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want %q", tc.conds, err, tc.wantErr)
		}
	}
}

// TestLintExactBounds: min_value above max_value is caught even when both round to one float64.
func TestLintExactBounds(t *testing.T) {
	src := oneRule("- parameter: x\n  min_value: 9007199254740993\n- parameter: x\n  max_value: 9007199254740992")
	f, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range Lint(f) {
		if l.Code == LintMinAboveMax {
			found = true
		}
	}
	if !found {
		t.Errorf("no %s finding for min 2^53+1 > max 2^53", LintMinAboveMax)
	}
}

// TestEvaluateExactNumbersAllocs: the exact comparison keeps Evaluate allocation-free, on the
// float64 fast path and on the json.Number path alike.
func TestEvaluateExactNumbersAllocs(t *testing.T) {
	s := mustSet(t, oneRule("- parameter: x\n  max_value: 9007199254740993\n- parameter: y\n  one_of: [1, 2.5, 9007199254740993]"))
	for _, params := range []map[string]any{
		{"x": json.Number("9007199254740992.5"), "y": json.Number("9007199254740993")},
		{"x": 12.0, "y": 2.5},
		{"x": int64(1<<62 + 1), "y": 1},
	} {
		r := req(params)
		if n := testing.AllocsPerRun(100, func() { s.Evaluate(r) }); n != 0 {
			t.Errorf("Evaluate(%v) allocates %v times", params, n)
		}
	}
}

// FuzzNumberCompare checks the exact comparator against math/big on arbitrary number texts.
func FuzzNumberCompare(f *testing.F) {
	for _, seed := range [][2]string{
		{"9007199254740993", "9007199254740992"}, {"9007199254740992.9", "9007199254740992"},
		{"1e400", "100"}, {"-0", "0"}, {"0.1", "0.10"}, {"1.5", "15e-1"}, {"-2", "-10"}, {"1e-400", "0"},
		{"123.456e7", "1234560000"}, {"0.000", "-0e5"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		lit, err := ParseNumber(b)
		if err != nil {
			return
		}
		c, ok := cmpNumber(json.Number(a), &lit)
		v, okView := scanNumber(a, false)
		if ok != okView {
			t.Fatalf("cmpNumber ok=%v, scan ok=%v", ok, okView)
		}
		if !ok || len(a) > 200 || len(b) > 200 || expTooLarge(a) || expTooLarge(b) {
			return
		}
		_ = v
		ra, okA := new(big.Rat).SetString(a)
		rb, okB := new(big.Rat).SetString(strings.TrimPrefix(b, "+"))
		if !okA || !okB {
			return
		}
		if want := ra.Cmp(rb); c != want {
			t.Fatalf("cmp(%s, %s) = %d, want %d", a, b, c, want)
		}
		// The float64 fast path agrees with the exact comparison.
		fa, _ := ra.Float64()
		if !math.IsInf(fa, 0) {
			fc, _ := cmpNumber(fa, &lit)
			if want := new(big.Rat).SetFloat64(fa).Cmp(rb); fc != want {
				t.Fatalf("cmp(float64 %v, %s) = %d, want %d", fa, b, fc, want)
			}
		}
		// Cmp between literals agrees too, and String reads back as the same number.
		if la, err := ParseNumber(a); err == nil && la.Cmp(lit) != c {
			t.Fatalf("Number.Cmp(%s, %s) = %d, want %d", a, b, la.Cmp(lit), c)
		}
		if back, err := ParseNumber(lit.String()); err != nil || back.Cmp(lit) != 0 {
			t.Fatalf("String(%s) = %s does not read back", b, lit.String())
		}
	})
}

// expTooLarge keeps math/big away from exponents it would take long to expand.
func expTooLarge(s string) bool {
	i := strings.IndexAny(s, "eE")
	return i >= 0 && len(strings.TrimLeft(s[i+1:], "+-0")) > 3
}
