package inspect

import (
	"cmp"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/jsonx"
)

type visited struct {
	Path, Key, S string
	IsKey        bool
}

func collect(t *testing.T, src string, depth int) ([]visited, error) {
	t.Helper()
	var got []visited
	err := walkJSON(src, depth, nil, func(p []byte, key, s string, isKey bool) error {
		got = append(got, visited{string(p), key, s, isKey})
		return nil
	})
	return got, err
}

func TestWalkJSON(t *testing.T) {
	src := `{"filter":{"region":"eu","n":3},"items":["a",{"x y":"b"},null,true,-1.5e3],"$where":"1","k2":"\u00e9\ud83d\ude00\"q"}`
	got, err := collect(t, src, 64)
	if err != nil {
		t.Fatal(err)
	}
	want := []visited{
		{"$.filter.region", "region", "eu", false},
		{"$.items[0]", "items", "a", false}, // array elements carry the array's member name
		{`$.items[1]["x y"]`, "x y", "x y", true},
		{`$.items[1]["x y"]`, "x y", "b", false},
		{`$["$where"]`, "$where", "$where", true},
		{`$["$where"]`, "$where", "1", false},
		{"$.k2", "k2", "k2", true},
		{"$.k2", "k2", "é😀\"q", false},
	}
	if d := gocmp.Diff(want, got); d != "" {
		t.Errorf("walk (-want +got):\n%s", d)
	}
}

func TestWalkJSONErrors(t *testing.T) {
	for _, src := range []string{``, `{`, `{"a"}`, `{"a":}`, `[1,]`, `[1 2]`, `"abc`, `"a\qb"`, `tru`, `01`, `1.`, `1e`,
		`{"a":1}x`, "\"a\x01b\"", "\"\xff\"", `{a:1}`, `"\u12"`, `[`, `-`, `{"a":1,}`} {
		_, err := collect(t, src, 64)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("walk(%q) error = %v, want ErrMalformed", src, err)
		}
		if json.Valid([]byte(src)) && utf8.ValidString(src) {
			t.Errorf("test input %q is valid JSON per encoding/json", src)
		}
	}
}

func TestWalkJSONDepth(t *testing.T) {
	src := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	if _, err := collect(t, src, 64); !errors.Is(err, errTooDeep) {
		t.Errorf("depth 100 with cap 64: err = %v, want errTooDeep", err)
	}
	if _, err := collect(t, src, 100); err != nil {
		t.Errorf("depth 100 with cap 100: err = %v", err)
	}
}

// FuzzWalkJSON checks the walker against encoding/json: it accepts exactly the valid documents
// (within the depth cap) and yields the same strings.
func FuzzWalkJSON(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `"x"`, `{"a":[1,2,{"b":"c"}]}`, `{"\u0041":"\ud800"}`, `[1e5,-0.5,true,false,null]`, "\"\xff\"", `{"a":"b",}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var n int
		err := walkJSON(s, 1000, nil, func(_ []byte, _, str string, isKey bool) error {
			n++
			return nil
		})
		// We also reject invalid UTF-8, which encoding/json tolerates.
		valid := json.Valid([]byte(s)) && utf8.ValidString(s)
		if (err == nil) != valid {
			t.Fatalf("walk(%q) err = %v, encoding/json valid = %v", s, err, valid)
		}
	})
}

func BenchmarkWalkJSON(b *testing.B) {
	src := string(sampleArgs(1024))
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	var path []byte
	for b.Loop() {
		_ = walkJSON(src, 64, path, func([]byte, string, string, bool) error { return nil })
	}
}

// TestWalkArrays checks which arrays are handed over joined: two or more strings within the
// bounds, at the array's own path, innermost first; mixed, nested, long or single ones are not.
func TestWalkArrays(t *testing.T) {
	var got []string
	var elems []string
	src := `{"a":["x","y"],"b":["x",1],"c":[["p","q"],"r"],"d":["only"],"e":[` +
		strings.Repeat(`"s",`, maxJoinElems) + `"s"],"f":["` + strings.Repeat("z", maxJoinBytes) + `","t"],"g":["\u0027","--"]}`
	err := walkJSONWith(src, 64, nil, arrayRecorder(func(path []byte, key string, es []string) {
		got = append(got, string(path)+"="+key+":"+strings.Join(es, "|"))
	}), true, &elems)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"$.a=a:x|y", "$.c[0]=c:p|q", "$.g=g:'|--"}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("arrays (-want +got):\n%s", diff)
	}
	// The walk of the decoded parameters (the request path) hands over the same arrays.
	params, err := jsonx.DecodeObject([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	var keys []string
	if err := walkValueWith(params, 64, nil, &keys, arrayRecorder(func(path []byte, key string, es []string) {
		got = append(got, string(path)+"="+key+":"+strings.Join(es, "|"))
	}), true, &elems); err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("arrays of the decoded parameters (-want +got):\n%s", diff)
	}
}

// arrayRecorder is a visitor that ignores values and passes arrays to itself.
type arrayRecorder func(path []byte, key string, elems []string)

func (arrayRecorder) visit([]byte, string, string, bool) error { return nil }
func (f arrayRecorder) array(path []byte, key string, elems []string) error {
	f(path, key, elems)
	return nil
}

// FuzzWalkValueMatchesText: walking the parameters as the decision path's one strict parse
// decoded them visits exactly what walking their text visits (the same strings and keys at the
// same paths), in key order instead of document order.
func FuzzWalkValueMatchesText(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,2,{"b":"c"}]}`, `{"filter":{"region":"eu","n":3},"items":["a",{"x y":"b"},null,true,-1.5e3],"$where":"1","k2":"\u00e9\ud83d\ude00\"q"}`,
		`{"z":{"y":[["deep"]]},"a":"first","ignore_previous_instructions":"x","../x":{"":""}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		params, err := jsonx.DecodeObject([]byte(s))
		if err != nil || strings.TrimSpace(s) == "" {
			return // InspectParams walks the text of empty parameters (and refuses it)
		}
		byText, textErr := collect(t, s, 64)
		var byValue []visited
		var keys []string
		valueErr := walkValue(params, 64, nil, &keys, func(p []byte, key, s string, isKey bool) error {
			byValue = append(byValue, visited{string(p), key, s, isKey})
			return nil
		})
		if (textErr == nil) != (valueErr == nil) {
			t.Fatalf("text walk err = %v, value walk err = %v", textErr, valueErr)
		}
		if textErr != nil {
			return
		}
		order := func(a, b visited) int { return cmp.Compare(a.Path+"\x00"+a.S, b.Path+"\x00"+b.S) }
		slices.SortStableFunc(byText, order)
		slices.SortStableFunc(byValue, order)
		if diff := gocmp.Diff(byText, byValue); diff != "" {
			t.Fatalf("value walk differs from text walk (-text +value):\n%s", diff)
		}
		if len(keys) != 0 {
			t.Fatalf("scratch keys left: %q", keys)
		}
	})
}

// TestWalkStringsAroundEscapes checks the string scanner where its eight-byte skipping meets
// escapes, non-ASCII bytes and control bytes at every offset: the decoded text, and invalid
// UTF-8 or a control byte refused wherever it lies (before, between or after escapes).
func TestWalkStringsAroundEscapes(t *testing.T) {
	for pad := 0; pad < 17; pad++ {
		p := strings.Repeat("a", pad)
		for _, tc := range []struct {
			src, want string
			ok        bool
		}{
			{p + `x\ny` + p, p + "x\ny" + p, true},
			{p + `\u00e9` + p + `\"` + p, p + "é" + p + `"` + p, true},
			{p + "é" + p + `\t` + p, p + "é" + p + "\t" + p, true},
			{p + `\ud83d\ude00` + p + "\\\\" + p, p + "😀" + p + `\` + p, true},
			{p + `\ud83d` + p, p + "\uFFFD" + p, true},
			{p + "\xff" + p + `\n`, "", false},
			{p + `\n` + p + "\xc3", "", false},
			{p + `\n` + p + "\xc3" + `\u00a9`, "", false},
			{p + "\xc3" + p, "", false},
			{p + `\n` + p + "\x01" + p, "", false},
			{p + "\x1f" + p, "", false},
		} {
			got, err := collect(t, `["`+tc.src+`"]`, 64)
			if !tc.ok {
				if err == nil {
					t.Errorf("%q: no error, got %+v", tc.src, got)
				}
				continue
			}
			if err != nil || len(got) != 1 || got[0].S != tc.want {
				t.Errorf("%q: got %+v, %v; want %q", tc.src, got, err, tc.want)
			}
		}
	}
}
