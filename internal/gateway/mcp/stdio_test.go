package mcp

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFilterLines(t *testing.T) {
	long := `{"a":"` + strings.Repeat("x", 100) + `"}`
	tests := []struct {
		name, in, wantOut string
		wantErrs          int
	}{
		{"valid lines pass", "{\"a\":1}\n[1]\n", "{\"a\":1}\n[1]\n", 0},
		{"no final newline", "{\"a\":1}", "{\"a\":1}\n", 0},
		{"blank lines skipped", "\n  \n{}\n", "{}\n", 0},
		{"malformed answered", "{not json\n{}\n", "{}\n", 1},
		{"oversized answered, next line kept", long + "\n{}\n", "{}\n", 1},
		{"oversized at EOF", long, "", 1},
		{"crlf", "{}\r\n", "{}\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			if err := filterLines(strings.NewReader(tt.in), &out, &errs, 64); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantOut, out.String()); diff != "" {
				t.Errorf("out (-want +got):\n%s", diff)
			}
			if got := strings.Count(errs.String(), `"jsonrpc":"2.0"`); got != tt.wantErrs {
				t.Errorf("%d error responses, want %d: %s", got, tt.wantErrs, errs.String())
			}
		})
	}
}

func FuzzFilterLines(f *testing.F) {
	for _, s := range []string{"{}\n", "{x\n", "\n\n", strings.Repeat("a", 100), "[1,2]\r\n{\"a\":\"\\u0000\"}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var out, errs bytes.Buffer
		if err := filterLines(strings.NewReader(s), &out, &errs, 32); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
			if line == "" && out.Len() == 0 {
				continue
			}
			if len(line) > 33 {
				t.Fatalf("oversized line passed: %q", line)
			}
			if !json.Valid([]byte(line)) {
				t.Fatalf("invalid JSON passed: %q", line)
			}
		}
	})
}
