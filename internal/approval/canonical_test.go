package approval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/jsonx"
)

func TestCanonicalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"whitespace and order", " { \"b\" : 1 ,\n\t\"a\" : [ true , null , false ] } ", `{"a":[true,null,false],"b":1}`},
		{"nested objects sorted", `{"z":{"y":1,"x":{"b":2,"a":1}},"a":[]}`, `{"a":[],"z":{"x":{"a":1,"b":2},"y":1}}`},
		{"numbers kept as written", `[1.0,1e10,1E+2,-0,0.5e-3,12345678901234567890123]`, `[1.0,1e10,1E+2,-0,0.5e-3,12345678901234567890123]`},
		{"escapes decoded", `"\u0041\/\u00e9\t\u001F\""`, `"A/é\t\u001f\""`},
		{"short escapes", `"\b\f\n\r\t\\"`, `"\b\f\n\r\t\\"`},
		{"surrogate pair", `"\ud83d\ude00"`, "\"\U0001F600\""},
		{"literal utf8 kept", `"ünïcödé ✓"`, `"ünïcödé ✓"`},
		{"U+2028 literal", "\"\u2028\"", "\"\u2028\""},
		{"empty containers", `{"a":{},"b":[]}`, `{"a":{},"b":[]}`},
		{"scalar", ` 42 `, `42`},
		// RFC 8785 §3.2.3: keys are ordered by UTF-16 code units, so the emoji (D83D…) sorts
		// before U+FB33 although its code point is larger.
		{
			"rfc8785 key order",
			`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew","1":"One","\ud83d\ude00":"Emoji","\u0080":"Control","\u00f6":"o"}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"o\",\"€\":\"Euro Sign\",\"\U0001F600\":\"Emoji\",\"\ufb33\":\"Hebrew\"}",
		},
		{"escaped key equals literal key order", `{"\u0062":1,"a":2}`, `{"a":2,"b":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tt.in))
			if err != nil {
				t.Fatalf("Canonicalize(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("Canonicalize(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	deep := strings.Repeat("[", MaxCanonicalDepth+1) + strings.Repeat("]", MaxCanonicalDepth+1)
	tests := []struct {
		name, in, wantMsg string
	}{
		{"empty", ``, "unexpected end"},
		{"duplicate key", `{"a":1,"a":2}`, "duplicate key"},
		{"duplicate key via escape", `{"a":1,"\u0061":2}`, "duplicate key"},
		{"trailing comma", `[1,]`, "unexpected character"},
		{"trailing object comma", `{"a":1,}`, "expected a string key"},
		{"lone high surrogate", `"\ud800"`, "lone surrogate"},
		{"lone low surrogate", `"\udc00"`, "lone surrogate"},
		{"bad pair", `"\ud800\u0041"`, "invalid surrogate pair"},
		{"invalid utf8", "\"\xff\"", "invalid UTF-8"},
		{"raw control char", "\"a\nb\"", "control character"},
		{"leading zero", `01`, "after the JSON value"},
		{"bare dot", `1.`, "no digits after the decimal point"},
		{"leading dot", `.5`, "unexpected character"},
		{"plus sign", `+1`, "unexpected character"},
		{"exponent without digits", `1e+`, "no digits in the exponent"},
		{"NaN", `NaN`, "unexpected character"},
		{"two values", `{} {}`, "after the JSON value"},
		{"unterminated string", `"abc`, "unterminated string"},
		{"unterminated array", `[1`, "unterminated array"},
		{"unterminated object", `{"a":1`, "unterminated object"},
		{"bad escape", `"\x"`, "invalid escape"},
		{"short unicode escape", `"\u12"`, "short \\u escape"},
		{"bad unicode escape", `"\u12zz"`, "invalid \\u escape"},
		{"bad literal", `tru`, "invalid literal"},
		{"too deep", deep, "nesting deeper"},
		{"missing colon", `{"a" 1}`, "expected ':'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tt.in))
			if !errors.Is(err, ErrCanonical) {
				t.Fatalf("Canonicalize(%q) = %q, %v; want ErrCanonical", tt.in, got, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Canonicalize(%q) error %q does not mention %q", tt.in, err, tt.wantMsg)
			}
		})
	}
}

func TestCanonicalizeDepthLimitInclusive(t *testing.T) {
	in := strings.Repeat(`{"a":`, MaxCanonicalDepth) + "1" + strings.Repeat("}", MaxCanonicalDepth)
	if _, err := Canonicalize([]byte(in)); err != nil {
		t.Fatalf("depth %d refused: %v", MaxCanonicalDepth, err)
	}
}

// TestCanonicalizeLargeObject: many keys, sorted, duplicates found past the small-object scan.
func TestCanonicalizeLargeObject(t *testing.T) {
	const n = 50_000
	var b strings.Builder
	b.WriteString("{")
	for i := n - 1; i >= 0; i-- {
		if i != n-1 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"k%07d":%d`, i, i)
	}
	b.WriteString("}")
	out, err := Canonicalize([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, []byte(`{"k0000000":0,"k0000001":1,`)) || !bytes.HasSuffix(out, []byte(`"k0049999":49999}`)) {
		t.Errorf("large object not sorted: %.60s … %.60s", out, out[len(out)-60:])
	}
	dup := `{"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b0":0,"b1":1,"b2":2,"b3":3,"b4":4,"b5":5,"b6":6,"b7":7,"a3":3}`
	if _, err := Canonicalize([]byte(dup)); !errors.Is(err, ErrCanonical) {
		t.Errorf("duplicate after 18 keys: err = %v", err)
	}
}

func TestCanonicalizeSizeLimit(t *testing.T) {
	in := make([]byte, MaxCanonicalSize+1)
	if _, err := Canonicalize(in); !errors.Is(err, ErrCanonical) {
		t.Fatalf("oversized input: err = %v, want ErrCanonical", err)
	}
}

func TestDigest(t *testing.T) {
	a, err := Digest([]byte(`{"amount": 1000, "to": "acct-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	// Same value, different layout and key order: same digest.
	b, err := Digest([]byte("{\"to\":\"acct-1\",\n \"amount\":1000}"))
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("layout changed the digest: %s != %s", a, b)
	}
	// One byte changed in a value: different digest.
	c, err := Digest([]byte(`{"amount": 1001, "to": "acct-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if a == c {
		t.Errorf("changed amount kept the digest %s", a)
	}
	// Known answer: SHA-256 of the canonical bytes `{"a":1}`.
	d, err := Digest([]byte(` { "a" : 1 } `))
	if err != nil {
		t.Fatal(err)
	}
	const want = "sha256:015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"
	if d != want {
		t.Errorf("Digest = %s, want %s", d, want)
	}
}

func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{
		`{"b":1,"a":[true,null,{"d":"x","c":1.5e3}]}`,
		`"\ud83d\ude00\u0000\n"`,
		`[1,2,3`,
		`{"a":1,"a":2}`,
		"\"\xff\"",
		`-0.0e-0`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Canonicalize(in)
		if err != nil {
			if !errors.Is(err, ErrCanonical) {
				t.Fatalf("error %v does not wrap ErrCanonical", err)
			}
			return
		}
		// Never more permissive than the standard library.
		if !json.Valid(in) {
			t.Fatalf("accepted invalid JSON %q", in)
		}
		if !json.Valid(out) {
			t.Fatalf("produced invalid JSON %q from %q", out, in)
		}
		again, err := Canonicalize(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, out, again, err)
		}
		if diff := cmp.Diff(decodeNumbers(t, in), decodeNumbers(t, out)); diff != "" {
			t.Fatalf("meaning changed for %q (-in +out):\n%s", in, diff)
		}
	})
}

func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

// FuzzCanonicalValueMatchesText: the canonical encoding of parameters as the decision path's
// one strict parse decoded them is the canonical encoding of their text — same bytes, so the
// same digest — and what Canonicalize refuses (too deep) CanonicalValue refuses too.
func FuzzCanonicalValueMatchesText(f *testing.F) {
	for _, s := range []string{`{}`, `{"b":1,"a":[1.0,-0,2e5,"x"]}`, `{"id":9007199254740993,"s":"\u00e9\ud83d\ude00\"\n\u001f"}`,
		`{"\ufb33":1,"\ud83d\ude00":2,"é":{"z":null,"y":true,"x":false}}`, strings.Repeat(`{"a":`, 129) + `1` + strings.Repeat(`}`, 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		params, err := jsonx.DecodeObject([]byte(s))
		if err != nil || strings.TrimSpace(s) == "" {
			return
		}
		want, wantErr := Canonicalize([]byte(s))
		got, err := CanonicalValue(params, len(s))
		if (wantErr == nil) != (err == nil) {
			t.Fatalf("Canonicalize err = %v, CanonicalValue err = %v", wantErr, err)
		}
		if err != nil {
			if !errors.Is(err, ErrCanonical) {
				t.Fatalf("CanonicalValue err = %v, want ErrCanonical", err)
			}
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("CanonicalValue = %s\nCanonicalize  = %s", got, want)
		}
	})
}
