package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParsePyCall(t *testing.T) {
	tests := []struct {
		in   string
		name string
		args map[string]any
	}{
		{"cd(folder='document')", "cd", map[string]any{"folder": "document"}},
		{"sort('final_report.pdf')", "sort", map[string]any{"arg0": "final_report.pdf"}},
		{`ls(a=True)`, "ls", map[string]any{"a": true}},
		{`f(n=20, p=0.6, v=[0.5, 1], d={'k': "v"}, z=None)`, "f", map[string]any{
			"n": 20.0, "p": 0.6, "v": []any{0.5, 1.0}, "d": map[string]any{"k": "v"}, "z": nil}},
		{`g(s='it\'s', e=x==1)`, "g", map[string]any{"s": "it's", "e": "x==1"}},
	}
	for _, tc := range tests {
		name, args, err := parsePyCall(tc.in)
		if err != nil {
			t.Errorf("parsePyCall(%q): %v", tc.in, err)
			continue
		}
		if name != tc.name {
			t.Errorf("parsePyCall(%q) name = %q, want %q", tc.in, name, tc.name)
		}
		if d := cmp.Diff(tc.args, args); d != "" {
			t.Errorf("parsePyCall(%q) args (-want +got):\n%s", tc.in, d)
		}
	}
	for _, bad := range []string{"", "noparens", "f(a='x", "(x)"} {
		if _, _, err := parsePyCall(bad); err == nil {
			t.Errorf("parsePyCall(%q) accepted malformed input", bad)
		}
	}
}

func FuzzParsePyCall(f *testing.F) {
	for _, s := range []string{"cd(folder='x')", "f([1,(2,3)],{'a':[]})", "f(", "f(a=)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _, _ = parsePyCall(s) // must not panic or hang
	})
}
