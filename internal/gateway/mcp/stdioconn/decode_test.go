package stdioconn

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// encode renders messages canonically, to compare them (jsonrpc.ID has unexported fields).
func encode(t testing.TB, msgs []jsonrpc.Message) []string {
	t.Helper()
	var out []string
	for _, m := range msgs {
		b, err := jsonrpc.EncodeMessage(m)
		if err != nil {
			t.Fatalf("encode %#v: %v", m, err)
		}
		out = append(out, string(b))
	}
	return out
}

func TestDecodeLine(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // canonical encodings; nil: an error
		batch    bool
		syntax   bool // the error is errSyntax (else errInvalid)
	}{
		{name: "request numeric id", in: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":[1,2]}}}`,
			want: []string{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":[1,2]}}}`}},
		{name: "request string id, keys in any order, spaces", in: ` { "params" : {} , "method" : "ping" , "id" : "a\u00e9" , "jsonrpc" : "2.0" } `,
			want: []string{`{"jsonrpc":"2.0","id":"aé","method":"ping","params":{}}`}},
		{name: "notification", in: `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			want: []string{`{"jsonrpc":"2.0","method":"notifications/initialized"}`}},
		{name: "notification with null id", in: `{"jsonrpc":"2.0","id":null,"method":"n"}`,
			want: []string{`{"jsonrpc":"2.0","method":"n"}`}},
		{name: "escaped key and method", in: `{"jsonrpc":"2.0","id":2,"\u006dethod":"tools\/list"}`,
			want: []string{`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`}},
		{name: "negative and exponent id", in: `{"jsonrpc":"2.0","id":-1e2,"method":"m"}`,
			want: []string{`{"jsonrpc":"2.0","id":-100,"method":"m"}`}},
		{name: "unknown keys ignored", in: `{"jsonrpc":"2.0","id":1,"method":"m","x":{"method":"other"},"y":[true,false,null]}`,
			want: []string{`{"jsonrpc":"2.0","id":1,"method":"m"}`}},
		{name: "response", in: `{"jsonrpc":"2.0","id":"7","result":{"content":[]}}`,
			want: []string{`{"jsonrpc":"2.0","id":"7","result":{"content":[]}}`}},
		{name: "error response", in: `{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no such method","data":{"m":"x"},"extra":1}}`,
			want: []string{`{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no such method","data":{"m":"x"}}}`}},
		{name: "null error", in: `{"jsonrpc":"2.0","id":3,"result":{},"error":null}`,
			want: []string{`{"jsonrpc":"2.0","id":3,"result":{}}`}},
		{name: "batch", in: `[{"jsonrpc":"2.0","id":1,"method":"a"}, {"jsonrpc":"2.0","method":"b"}]`, batch: true,
			want: []string{`{"jsonrpc":"2.0","id":1,"method":"a"}`, `{"jsonrpc":"2.0","method":"b"}`}},

		{name: "not JSON", in: `{not json`, syntax: true},
		{name: "trailing data", in: `{"jsonrpc":"2.0","method":"a"} {}`, syntax: true},
		{name: "two messages on a line", in: `{"jsonrpc":"2.0","method":"a"}{"jsonrpc":"2.0","method":"b"}`, syntax: true},
		{name: "control character in string", in: "{\"jsonrpc\":\"2.0\",\"method\":\"a\tb\"}", syntax: true},
		{name: "bad escape", in: `{"jsonrpc":"2.0","method":"\x"}`, syntax: true},
		{name: "bad number", in: `{"jsonrpc":"2.0","id":01,"method":"a"}`, syntax: true},
		{name: "semantic error but also not JSON", in: `{"jsonrpc":"1.0","method":"a"`, syntax: true},

		{name: "case variant of method", in: `{"jsonrpc":"2.0","id":1,"method":"a","METHOD":"b"}`},
		{name: "case variant alone", in: `{"jsonrpc":"2.0","id":1,"Method":"b"}`},
		{name: "case variant of id", in: `{"jsonrpc":"2.0","id":1,"ID":2,"method":"a"}`},
		{name: "case variant of params", in: `{"jsonrpc":"2.0","id":1,"method":"a","Params":{}}`},
		{name: "case variant in error", in: `{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m","Message":"n"}}`},
		{name: "long s folds to s", in: "{\"j\u017fonrpc\":\"1.0\",\"jsonrpc\":\"2.0\",\"method\":\"a\"}"},
		{name: "escaped case variant", in: `{"jsonrpc":"2.0","id":1,"method":"a","\u004dethod":"b"}`},
		{name: "duplicate method", in: `{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}`},
		{name: "duplicate id", in: `{"jsonrpc":"2.0","id":1,"id":2,"method":"a"}`},
		{name: "duplicate params", in: `{"jsonrpc":"2.0","id":1,"method":"a","params":{},"params":{"x":1}}`},
		{name: "duplicate key by escape", in: `{"jsonrpc":"2.0","id":1,"method":"a","\u006dethod":"b"}`},
		{name: "duplicate error code", in: `{"jsonrpc":"2.0","id":1,"error":{"code":1,"code":2,"message":"m"}}`},
		{name: "missing version", in: `{"id":1,"method":"a"}`},
		{name: "wrong version", in: `{"jsonrpc":"1.0","id":1,"method":"a"}`},
		{name: "version not a string", in: `{"jsonrpc":2.0,"id":1,"method":"a"}`},
		{name: "method not a string", in: `{"jsonrpc":"2.0","id":1,"method":1}`},
		{name: "method null", in: `{"jsonrpc":"2.0","id":1,"method":null}`},
		{name: "id an object", in: `{"jsonrpc":"2.0","id":{},"method":"a"}`},
		{name: "id a bool", in: `{"jsonrpc":"2.0","id":true,"method":"a"}`},
		{name: "id fractional", in: `{"jsonrpc":"2.0","id":1.5,"method":"a"}`},
		{name: "id beyond 2^53", in: `{"jsonrpc":"2.0","id":9007199254740993,"method":"a"}`},
		{name: "response without id", in: `{"jsonrpc":"2.0","result":{}}`},
		{name: "error code fractional", in: `{"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"m"}}`},
		{name: "error not an object", in: `{"jsonrpc":"2.0","id":1,"error":"boom"}`},
		{name: "invalid UTF-8 in method", in: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\xff\"}"},
		{name: "not an object", in: `42`},
		{name: "null", in: `null`},
		{name: "empty batch", in: `[]`, batch: true},
		{name: "batch of a non-message", in: `[{"jsonrpc":"2.0","method":"a"},1]`, batch: true},
		{name: "nested batch", in: `[[{"jsonrpc":"2.0","method":"a"}]]`, batch: true},
		{name: "too deep", in: `{"jsonrpc":"2.0","method":"a","params":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, batch, err := decodeLine([]byte(tt.in))
			if batch != tt.batch {
				t.Errorf("batch = %v, want %v", batch, tt.batch)
			}
			if tt.want == nil {
				want := errInvalid
				if tt.syntax {
					want = errSyntax
				}
				if !errors.Is(err, want) {
					t.Fatalf("err = %v, want %v", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, encode(t, msgs)); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeLineDepth: a thousand levels, the SDK's limit, are accepted; one more is not.
func TestDecodeLineDepth(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	ok := `{"jsonrpc":"2.0","method":"a","params":` + nest(999) + `}`
	if _, _, err := decodeLine([]byte(ok)); err != nil {
		t.Errorf("1000 levels: %v", err)
	}
	if _, _, err := decodeLine([]byte(`{"jsonrpc":"2.0","method":"a","params":` + nest(1000) + `}`)); !errors.Is(err, errInvalid) {
		t.Errorf("1001 levels: %v", err)
	}
}

// sdkDecode decodes a line the way the SDK's stdio connection does.
func sdkDecode(line []byte) ([]jsonrpc.Message, bool, error) {
	var raws []json.RawMessage
	if json.Unmarshal(line, &raws) == nil {
		if len(raws) == 0 {
			return nil, true, errors.New("empty batch")
		}
		var msgs []jsonrpc.Message
		for _, r := range raws {
			m, err := jsonrpc.DecodeMessage(r)
			if err != nil {
				return nil, true, err
			}
			msgs = append(msgs, m)
		}
		return msgs, true, nil
	}
	m, err := jsonrpc.DecodeMessage(line)
	return []jsonrpc.Message{m}, false, err
}

// FuzzDecodeLine checks that the decoder is never more permissive than the SDK's: what it
// accepts is JSON, the SDK accepts it too and reads the same messages from it.
func FuzzDecodeLine(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`,
		`{"jsonrpc":"2.0","id":"a","result":{"x":[1,"2",null,true]}}`,
		`{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"m","data":[]}}`,
		`[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","id":2,"method":"b","params":[]}]`,
		`{"jsonrpc":"2.0","id":1,"method":"a","METHOD":"b"}`,
		`{"jsonrpc":"2.0","id":1e3,"method":"\u0061\n"}`,
		`{"jsonrpc":"2.0","id":-0.0,"method":""}`,
		`{"jsonrpc":"2.0","id":1,"method":"a","params":null}`,
		`{"jsonrpc":"2.0","id":1,"result":null,"error":{"data":null}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		msgs, batch, err := decodeLine([]byte(s))
		if err != nil {
			if !errors.Is(err, errSyntax) && !errors.Is(err, errInvalid) {
				t.Fatalf("unclassified error %v", err)
			}
			if errors.Is(err, errSyntax) == json.Valid([]byte(s)) {
				t.Fatalf("error %v for a line where json.Valid = %v", err, json.Valid([]byte(s)))
			}
			return
		}
		if !json.Valid([]byte(s)) {
			t.Fatalf("accepted invalid JSON %q", s)
		}
		want, wantBatch, err := sdkDecode([]byte(s))
		if err != nil {
			t.Fatalf("accepted %q, which the SDK refuses: %v", s, err)
		}
		if batch != wantBatch {
			t.Fatalf("batch = %v, SDK says %v", batch, wantBatch)
		}
		if diff := cmp.Diff(encode(t, want), encode(t, msgs)); diff != "" {
			t.Fatalf("%q read differently from the SDK (-sdk +ours):\n%s", s, diff)
		}
	})
}
