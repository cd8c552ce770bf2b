package jsonx

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
		path     string // for duplicates
	}{
		{"object", `{"a":[1,-2.5e3,{"b":null}],"c":"d\u00e9\n","e":true}`, nil, ""},
		{"scalar", ` "x" `, nil, ""},
		{"surrogate pair", `{"s":"\ud83d\ude00"}`, nil, ""},
		{"same key in sibling objects", `{"a":{"k":1},"b":{"k":2}}`, nil, ""},
		{"same key at two depths", `{"k":{"k":1}}`, nil, ""},
		{"exact duplicate", `{"limit":5000,"limit":50}`, ErrDuplicateKey, "$.limit"},
		{"case-variant duplicate", `{"tool":"delete_file","TOOL":"fetch_customer_names"}`, ErrDuplicateKey, "$.TOOL"},
		{"escaped duplicate", `{"a":1,"\u0061":2}`, ErrDuplicateKey, "$.a"},
		{"kelvin sign folds to k", `{"k":1,"\u212a":2}`, ErrDuplicateKey, "$[\"\u212a\"]"},
		{"nested duplicate", `{"params":{"q":[{"x":1},{"text":"evil","text":"safe"}]}}`, ErrDuplicateKey, "$.params.q[1].text"},
		{"duplicate after many keys", manyKeys(40) + `,"k7":0}`, ErrDuplicateKey, "$.k7"},
		{"case duplicate after many keys", manyKeys(40) + `,"K39":0}`, ErrDuplicateKey, "$.K39"},
		{"many distinct keys", manyKeys(40) + `}`, nil, ""},
		{"odd key path", `{"a b":{"x":1,"x":2}}`, ErrDuplicateKey, `$["a b"].x`},
		{"invalid utf-8", "{\"a\":\"\xff\"}", ErrInvalidUTF8, ""},
		{"invalid utf-8 in escaped string", "{\"a\":\"\\n\xff\"}", ErrInvalidUTF8, ""},
		{"lone high surrogate", `{"a":"\ud800"}`, ErrInvalidUTF8, ""},
		{"lone low surrogate", `{"a":"\udc00x"}`, ErrInvalidUTF8, ""},
		{"trailing data", `{"a":1} {}`, ErrSyntax, ""},
		{"trailing comma", `{"a":1,}`, ErrSyntax, ""},
		{"leading zero", `{"a":01}`, ErrSyntax, ""},
		{"bad escape", `{"a":"\x"}`, ErrSyntax, ""},
		{"control character", "{\"a\":\"\x01\"}", ErrSyntax, ""},
		{"empty", ``, ErrSyntax, ""},
		{"too deep", strings.Repeat("[", MaxNesting+1) + strings.Repeat("]", MaxNesting+1), ErrTooDeep, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate([]byte(tc.in), Limits{})
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Validate(%.60q) = %v, want %v", tc.in, err, tc.want)
			}
			var dup *DuplicateKeyError
			if errors.As(err, &dup) && dup.Path != tc.path {
				t.Errorf("path = %s, want %s", dup.Path, tc.path)
			}
		})
	}
}

func TestValidateLimits(t *testing.T) {
	if err := Validate([]byte(`[[[1]]]`), Limits{MaxDepth: 2}); !errors.Is(err, ErrTooDeep) {
		t.Errorf("depth 3 with a limit of 2: %v", err)
	}
	if err := Validate([]byte(`[[1]]`), Limits{MaxDepth: 2}); err != nil {
		t.Errorf("depth 2 with a limit of 2: %v", err)
	}
	if err := Validate([]byte(`"12345"`), Limits{MaxBytes: 5}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("7 bytes with a limit of 5: %v", err)
	}
	if err := ValidateObject([]byte(`[1]`), Limits{}); !errors.Is(err, ErrSyntax) {
		t.Errorf("array as arguments: %v", err)
	}
	if err := ValidateObject([]byte(" "), Limits{}); err != nil {
		t.Errorf("absent arguments: %v", err)
	}
}

func TestDecodeRefusesTwoReadings(t *testing.T) {
	if _, err := DecodeObject([]byte(`{"limit":5000,"limit":50}`)); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("DecodeObject with a duplicate: %v", err)
	}
	type body struct {
		Tool string `json:"tool"`
	}
	var b body
	if err := DecodeStrict([]byte(`{"tool":"delete_file","TOOL":"fetch_customer_names"}`), &b); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("DecodeStrict with a case-variant duplicate: %v (decoded %+v)", err, b)
	}
	b = body{}
	if err := DecodeStrict([]byte(`{"TOOL":"fetch_customer_names"}`), &b); err == nil || b.Tool != "" {
		t.Errorf("DecodeStrict matched %q to tool: %+v, %v", "TOOL", b, err)
	}
}

// manyKeys returns an unterminated object with the members "k0" … "k<n-1>".
func manyKeys(n int) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`"k` + strconv.Itoa(i) + `":0`)
	}
	return sb.String()
}

// loneSurrogate approximately finds a \u escape of a surrogate (it may also match an escaped
// backslash followed by "ud800", which only weakens the oracle).
var loneSurrogate = regexp.MustCompile(`\\u[dD][89a-fA-F]`)

// FuzzValidate checks Validate against encoding/json: whatever it accepts, encoding/json accepts
// with no repeated key (exactly or up to case) in any object; whatever it refuses is either
// refused by encoding/json too, or holds a duplicate, invalid UTF-8 or a surrogate escape.
func FuzzValidate(f *testing.F) {
	for _, s := range append(seeds, `{"a":1,"A":2}`, `{"a":{"b":1,"b":2}}`, `{"k":1,"\u212a":2}`, `[{"x":1},{"x":1}]`,
		`{"\u0061":1,"a":2}`, `{"s":"\ud800"}`, `{"ſ":1,"S":2}`, manyKeys(20)+`}`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Validate(b, Limits{})
		stdOK := json.Valid(b)
		dup := stdOK && hasFoldedDuplicate(t, b)
		switch {
		case err == nil:
			if !stdOK {
				t.Fatalf("%q: accepted, but encoding/json refuses it", b)
			}
			if dup {
				t.Fatalf("%q: accepted with a repeated key", b)
			}
			if !utf8.Valid(b) {
				t.Fatalf("%q: accepted with invalid UTF-8", b)
			}
		case errors.Is(err, ErrDuplicateKey):
			// Validate reads as it checks: a repeat before a syntax error is reported first.
			if stdOK && !dup {
				t.Fatalf("%q: %v, but encoding/json sees no repeated key", b, err)
			}
		case errors.Is(err, ErrInvalidUTF8):
			if stdOK && utf8.Valid(b) && !loneSurrogate.Match(b) {
				t.Fatalf("%q: %v, but it is valid UTF-8 with no surrogate escape", b, err)
			}
		default:
			if stdOK && !errors.Is(err, ErrTooDeep) {
				t.Fatalf("%q: %v, but encoding/json accepts it", b, err)
			}
		}
	})
}

// tokObj is an open object or array while hasFoldedDuplicate walks a document.
type tokObj struct {
	keys   []string
	isObj  bool
	expect bool // the next token of an object is a key
}

// hasFoldedDuplicate walks b (valid JSON) with encoding/json's tokenizer and reports whether
// any object repeats a key up to case (strings.EqualFold).
func hasFoldedDuplicate(t *testing.T, b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	var stack []*tokObj
	valueDone := func() {
		if len(stack) > 0 && stack[len(stack)-1].isObj {
			stack[len(stack)-1].expect = true
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return false
		}
		if err != nil {
			t.Fatalf("%q: encoding/json's tokenizer: %v", b, err)
		}
		if n := len(stack); n > 0 && stack[n-1].isObj && stack[n-1].expect {
			top := stack[n-1]
			if tok == json.Delim('}') {
				stack = stack[:n-1]
				valueDone()
				continue
			}
			k := tok.(string)
			for _, seen := range top.keys {
				if strings.EqualFold(seen, k) {
					return true
				}
			}
			top.keys = append(top.keys, k)
			top.expect = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &tokObj{isObj: true, expect: true})
		case json.Delim('['):
			stack = append(stack, &tokObj{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}

// hasStringSpecial finds a quote, a backslash or a control byte at every position of a word, and
// nothing else, whatever the other bytes are.
func TestHasStringSpecial(t *testing.T) {
	for pos := range 8 {
		for c := range 256 {
			for _, fill := range []byte{'a', 0x7f, 0x80, 0xff, ' ', '!', '#', '[', ']'} {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(c)
				want := c == '"' || c == '\\' || c < 0x20
				if got := hasStringSpecial(binary.LittleEndian.Uint64(w[:])); got != want {
					t.Fatalf("byte %#x at %d among %#x: %v, want %v", c, pos, fill, got, want)
				}
			}
		}
	}
}
