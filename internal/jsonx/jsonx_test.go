package jsonx

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var seeds = []string{
	`{}`, ` {"a":1} `, `{"a":[1,2,{"b":null}],"c":"d\u00e9\n","e":true,"f":-1.5e3}`,
	`{"a":"x","a":"y"}`, `{"big":123456789012345678901234567890}`, `{"s":"\ud83d\ude00 \u2028"}`,
	`[]`, `"x"`, `1`, `null`, `{"a":1} {"b":2}`, `{"a":1}x`, `{"a":}`, `{"a":1,}`, `{'a':1}`,
	`{"a":"\x"}`, `{"a":01}`, `{"a":NaN}`, "{\"a\":\"\xff\"}", `{"a":"unterminated`,
}

// DecodeObject accepts what encoding/json accepts as one object, and decodes it to the same
// value (with UseNumber: numbers as json.Number): the decision path must not read parameters
// differently from everything else. The exceptions are what Validate refuses on purpose because
// readers disagree on it: a repeated key, invalid UTF-8 and surrogate escapes (encoding/json
// reads them its own way).
func FuzzDecodeObjectMatchesStdlib(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(trimSpace(raw)) == 0 {
			return // an absent body is an empty object here, an error there
		}
		got, err := DecodeObject(raw)
		var want any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // numbers as their exact text, as DecodeObject reads them
		stdErr := dec.Decode(&want)
		if stdErr == nil && dec.InputOffset() < int64(len(raw)) && len(trimSpace(raw[dec.InputOffset():])) != 0 {
			stdErr = errors.New("trailing data")
		}
		if _, isObj := want.(map[string]any); stdErr == nil && !isObj {
			stdErr = errors.New("not an object")
		}
		if err != nil && stdErr == nil && (errors.Is(err, ErrDuplicateKey) || errors.Is(err, ErrInvalidUTF8)) {
			return
		}
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("%q: jsonx error %v, encoding/json error %v", raw, err, stdErr)
		}
		if err == nil {
			if diff := cmp.Diff(want, any(got)); diff != "" {
				t.Fatalf("%q decoded differently (-std +jsonx):\n%s", raw, diff)
			}
		}
	})
}

func TestDecodeObject(t *testing.T) {
	if m, err := DecodeObject(nil); err != nil || len(m) != 0 {
		t.Errorf("empty params = %v, %v; want an empty object", m, err)
	}
	deep := strings.Repeat("[", MaxNesting+1) + strings.Repeat("]", MaxNesting+1)
	if _, err := DecodeObject([]byte(`{"a":` + deep + `}`)); !errors.Is(err, ErrTooDeep) {
		t.Errorf("deep document: err = %v, want ErrTooDeep", err)
	}
	if _, err := DecodeObject([]byte(`["a"]`)); err == nil || !strings.Contains(err.Error(), "an array") {
		t.Errorf("array: err = %v, want a clear error", err)
	}
}

func TestDecodeStrict(t *testing.T) {
	type body struct {
		Tool   string          `json:"tool"`
		Params json.RawMessage `json:"params"`
	}
	var b body
	if err := DecodeStrict([]byte(` {"tool":"t","params":{"x":[1,2]}} `), &b); err != nil || b.Tool != "t" || string(b.Params) != `{"x":[1,2]}` {
		t.Fatalf("valid body: %+v, %v", b, err)
	}
	for _, bad := range []string{`{"tool":"t","extra":1}`, `{"tool":"t"} {}`, `{"tool":`, `{"tool":1}`} {
		var b body
		if err := DecodeStrict([]byte(bad), &b); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	deep := strings.Repeat("[", MaxNesting+1) + strings.Repeat("]", MaxNesting+1)
	if err := DecodeStrict([]byte(`{"tool":"t","params":`+deep+`}`), &b); !errors.Is(err, ErrTooDeep) {
		t.Errorf("deep body: err = %v, want ErrTooDeep", err)
	}
}

func TestDepth(t *testing.T) {
	for s, want := range map[string]int{`1`: 0, `{}`: 1, `{"a":[{}]}`: 3, `{"a":"[[[["}`: 1, `["\"]"]`: 1} {
		if got := Depth([]byte(s)); got != want {
			t.Errorf("Depth(%s) = %d, want %d", s, got, want)
		}
	}
}

// Depth and CountValues skip strings by jumping between quotes; they must agree with a plain
// byte-by-byte scan on any input, escapes included.
func FuzzScansMatchBytewise(f *testing.F) {
	for _, s := range append(seeds, `{"a\\":"[","b":"\\\"{"}`, `["\\\\"]`, `"\\`, `{"a":"x\\\\\\"]"}`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		depth, deepest, inString, escaped := 0, 0, false, false
		for _, c := range b {
			switch {
			case inString:
				if escaped {
					escaped = false
				} else if c == '\\' {
					escaped = true
				} else if c == '"' {
					inString = false
				}
			case c == '"':
				inString = true
			case c == '{' || c == '[':
				depth++
				deepest = max(deepest, depth)
			case c == '}' || c == ']':
				depth--
			}
		}
		if got := Depth(b); got != deepest {
			t.Errorf("Depth(%q) = %d, bytewise %d", b, got, deepest)
		}
		// On valid JSON, CountValues is exactly the number of values the decoder builds.
		var v any
		if deepest < 1000 && json.Unmarshal(b, &v) == nil {
			if got, want := CountValues(b), countTokens(b); got != want {
				t.Errorf("CountValues(%q) = %d, decoded %d", b, got, want)
			}
		}
	})
}

// countTokens counts the values of valid JSON from the standard decoder's tokens (duplicate keys
// included, which a decoded map would merge).
func countTokens(b []byte) int {
	type frame struct{ obj, wantKey bool }
	dec := json.NewDecoder(bytes.NewReader(b))
	n := 0
	var stack []frame
	valueDone := func() {
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return n
		}
		d, isDelim := tok.(json.Delim)
		switch {
		case isDelim && (d == '}' || d == ']'):
			stack = stack[:len(stack)-1]
			valueDone()
		case len(stack) > 0 && stack[len(stack)-1].wantKey:
			stack[len(stack)-1].wantKey = false // a key
		case isDelim:
			n++
			stack = append(stack, frame{obj: d == '{', wantKey: d == '{'})
		default:
			n++
			valueDone()
		}
	}
}

func TestCountValues(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{``, 0},
		{`{}`, 1},
		{`{"a":[]}`, 2},
		{`{"a":[1,2]}`, 4},
		{`{"a": -1.5e+3, "b": true, "c": null, "d": "x:y"}`, 5},
		{`{"a\"b": {"c": [false, {}]}}`, 5},
	}
	for _, tc := range tests {
		if got := CountValues([]byte(tc.in)); got != tc.want {
			t.Errorf("CountValues(%s) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// BenchmarkDecodeObject reads typical tool arguments: refusal of two readings and the value, as
// the guard reads every call's parameters.
func BenchmarkDecodeObject(b *testing.B) {
	raw := []byte(`{"query_type":"quarterly","region":"north","limit":500,"filters":{"from":"2026-01-01","to":"2026-03-31","tags":["a","b","c"]},"note":"report for the board \u00e9"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := DecodeObject(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// DecodeFields is DecodeObject's reading, member by member: it refuses exactly what DecodeObject
// refuses (empty input aside), its members make DecodeObject's map, and each member's text is
// the exact slice of the input that DecodeObject decodes to that member's value.
func FuzzDecodeFieldsMatchesDecodeObject(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(` { "tool" : "t" , "params" : { "a" : [ 1 , 2 ] } , "\u0074ool2" : null } `))
	f.Add([]byte(`{"a":{"b":1,"b":2}}`))
	f.Add([]byte(`{"a":1,"A":2}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		fields, err := DecodeFields(raw)
		if len(trimSpace(raw)) == 0 {
			if err == nil {
				t.Fatal("empty input accepted")
			}
			return
		}
		want, wantErr := DecodeObject(raw)
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Fatalf("%q: DecodeFields error %v, DecodeObject error %v", raw, err, wantErr)
		}
		if err != nil {
			return
		}
		got := map[string]any{}
		for _, fl := range fields {
			if _, dup := got[fl.Key]; dup {
				t.Fatalf("%q: member %q twice", raw, fl.Key)
			}
			got[fl.Key] = fl.Value
			one, err := DecodeObject([]byte(`{"v":` + string(fl.Raw) + `}`))
			if err != nil {
				t.Fatalf("%q: member %q text %q does not decode: %v", raw, fl.Key, fl.Raw, err)
			}
			if diff := cmp.Diff(one["v"], fl.Value); diff != "" {
				t.Fatalf("%q: member %q text %q decodes otherwise (-text +value):\n%s", raw, fl.Key, fl.Raw, diff)
			}
			if !bytes.Contains(raw, fl.Raw) {
				t.Fatalf("%q: member %q text %q is not the input's", raw, fl.Key, fl.Raw)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%q: members differ from DecodeObject (-object +fields):\n%s", raw, diff)
		}
	})
}

func TestDecodeFields(t *testing.T) {
	raw := []byte(` {"tool":"t", "params" : {"x":[1,2]},"\u006e":null} `)
	got, err := DecodeFields(raw)
	want := []Field{
		{Key: "tool", Raw: []byte(`"t"`), Value: "t"},
		{Key: "params", Raw: []byte(`{"x":[1,2]}`), Value: map[string]any{"x": []any{json.Number("1"), json.Number("2")}}},
		{Key: "n", Raw: []byte(`null`), Value: nil},
	}
	if diff := cmp.Diff(want, got); err != nil || diff != "" {
		t.Fatalf("DecodeFields: %v (-want +got):\n%s", err, diff)
	}
	// The text is the input's own bytes, not a copy: a caller keeps it without copying.
	if &got[1].Raw[0] != &raw[bytes.IndexByte(raw, '{')+len(`{"tool":"t", "params" : `)] {
		t.Error("params text is a copy")
	}
	for _, bad := range []string{``, ` `, `[]`, `"x"`, `{"a":1}x`, `{"a":1,"a":2}`, `{"a":{"b":1,"B":2}}`, `{"a":`} {
		if _, err := DecodeFields([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	_, err = DecodeFields([]byte(`{"params":{"limit":1,"limit":2}}`))
	var dup *DuplicateKeyError
	if !errors.As(err, &dup) || dup.Path != "$.params.limit" {
		t.Errorf("duplicate inside a member: %v, want the path $.params.limit", err)
	}
}

func TestObjectKeys(t *testing.T) {
	got, err := ObjectKeys([]byte(` {"b":{"x":1,"y":[2]},"\u0061":"s","c":null} `))
	if diff := cmp.Diff([]string{"b", "a", "c"}, got); err != nil || diff != "" {
		t.Fatalf("ObjectKeys: %v (-want +got):\n%s", err, diff)
	}
	for _, bad := range []string{``, `[]`, `null`, `{"a":1,"a":2}`, `{"a":{"b":1,"B":2}}`, `{"a":1}x`, "{\"a\":\"\xff\"}"} {
		if _, err := ObjectKeys([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
