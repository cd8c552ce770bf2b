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
