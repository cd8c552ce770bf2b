package ledger_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// A secret the inspection engine detected, and secrets under sensitive names, never reach the
// stored bytes — in the parameters, the parameter hash or anywhere else.
func TestSecretsNeverStored(t *testing.T) {
	const detected = "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"
	const named = "hunter2-correct-horse"
	const nested = "ghp_0123456789abcdefghijklmnopqrstuvwxyz"
	params := `{"query":"send invoice","config":{"auth":{"Password":"` + named + `"}},"note":"key is ` + detected + `","items":["ok","` + nested + `"]}`
	for _, withHashKey := range []bool{false, true} {
		e := newEnv(t, nil)
		redactor := ledger.RedactorFunc(func(tool string, p json.RawMessage) []string {
			if !bytes.Contains(p, []byte(detected)) {
				t.Errorf("redactor did not see the raw parameters")
			}
			return []string{"$.note"}
		})
		l := e.open(t, func(o *ledger.Options) {
			o.Redactor = redactor
			if !withHashKey {
				o.HashKey = nil
			}
		})
		r := decision(1)
		r.Params = json.RawMessage(params)
		seq := mustAppend(t, l, r)
		r2 := decision(2)
		r2.Params = json.RawMessage(params)
		if _, err := l.Append(context.Background(), r2, "$.items[1]"); err != nil {
			t.Fatal(err)
		}
		mustClose(t, l)
		var all []byte
		e.st.Scan(context.Background(), 0, func(en ledger.Entry) error {
			all = append(all, en.Data...)
			return nil
		})
		for _, s := range []string{detected, named} {
			if bytes.Contains(all, []byte(s)) {
				t.Errorf("hash key %v: secret %q found in the stored bytes", withHashKey, s)
			}
		}
		rs := records(t, e.st)
		if bytes.Contains(mustJSON(t, rs[seq+1]), []byte(nested)) {
			t.Errorf("secret passed as a detected path was stored")
		}
		got := rs[seq]
		if diff := cmp.Diff([]string{"$.config.auth.Password", "$.note"}, got.Redacted); diff != "" {
			t.Errorf("redacted paths (-want +got):\n%s", diff)
		}
		if got.ParamsSize != len(params) {
			t.Errorf("params_size = %d, want %d", got.ParamsSize, len(params))
		}
		var p map[string]any
		if err := json.Unmarshal(got.Params, &p); err != nil {
			t.Fatal(err)
		}
		note := p["note"].(string)
		if withHashKey {
			if want := ledger.HashValue(e.keys.HashKey, "key is "+detected); note != want {
				t.Errorf("hashed note = %q, want %q (searchable by audit hash)", note, want)
			}
			if !strings.HasPrefix(got.ParamsHash, ledger.HashPrefix) {
				t.Errorf("params_hash = %q, want an HMAC", got.ParamsHash)
			}
		} else if note != ledger.Redacted {
			t.Errorf("note = %q, want %q", note, ledger.Redacted)
		}
		if p["query"] != "send invoice" {
			t.Errorf("non-sensitive value changed: %v", p["query"])
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParamsThatCannotBeRedactedAreWithheld(t *testing.T) {
	tests := []struct {
		name, params string
		paths        []string
		max          int
	}{
		{"invalid JSON", `{"password":"p4ss`, nil, 0},
		{"trailing data", `{"a":1} {"password":"x"}`, nil, 0},
		// The same without a sensitive name: the path that skips the redaction walk.
		{"invalid JSON, nothing sensitive", `{"a":"b`, nil, 0},
		{"trailing data, nothing sensitive", `{"a":1} {"b":2}`, nil, 0},
		{"too large", `{"a":"` + strings.Repeat("x", 100) + `"}`, nil, 50},
		{"detected path not found", `{"a":{"b.c":"s3cr3t-value"}}`, []string{"$.a[\"b\"].c"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			l := e.open(t, func(o *ledger.Options) { o.MaxParamsBytes = tc.max })
			r := decision(1)
			r.Params = json.RawMessage(tc.params)
			seq, err := l.Append(context.Background(), r, tc.paths...)
			if err != nil {
				t.Fatalf("append must still record the call: %v", err)
			}
			mustClose(t, l)
			got := records(t, e.st)[seq]
			if got.Params != nil || got.ParamsDropped == "" || got.ParamsSize != len(tc.params) {
				t.Errorf("params %s, dropped %q, size %d: want withheld with a reason and the size", got.Params, got.ParamsDropped, got.ParamsSize)
			}
		})
	}
}

// Sensitive names are found however they are spelled — escaped, upper case, nested in arrays —
// and parameters with nothing to redact are stored whole (compacted, same value).
func TestSensitiveNameSpellings(t *testing.T) {
	tests := []struct {
		name, params string
		redacted     []string
	}{
		{"escaped name", `{"q":"x","pass\u0077ord":"hunter2"}`, []string{"$.password"}},
		{"upper case", `{"API_KEY":"hunter2","q":"x"}`, []string{"$.API_KEY"}},
		{"in an array", `{"items":[{"token":"hunter2"}]}`, []string{"$.items[0].token"}},
		{"Kelvin sign", "{\"to\u212aen\" :\"hunter2\"}", []string{"$[\"to\u212aen\"]"}},
		{"a sensitive word as a value", `{"q":"password","r":["token"]}`, nil},
		{"nothing sensitive", "{ \"q\" : \"quarterly report\",\n \"n\": 1.50, \"tags\": [\"a\", \"<b>\"] }", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			l := e.open(t, func(o *ledger.Options) { o.HashKey = nil })
			r := decision(1)
			r.Params = json.RawMessage(tc.params)
			seq := mustAppend(t, l, r)
			mustClose(t, l)
			got := records(t, e.st)[seq]
			if diff := cmp.Diff(tc.redacted, got.Redacted); diff != "" {
				t.Errorf("redacted paths (-want +got):\n%s", diff)
			}
			if bytes.Contains(got.Params, []byte("hunter2")) {
				t.Errorf("secret stored: %s", got.Params)
			}
			if tc.redacted == nil {
				var want, have any
				if err := json.Unmarshal([]byte(tc.params), &want); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(got.Params, &have); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, have); diff != "" || got.ParamsDropped != "" {
					t.Errorf("stored params changed (dropped %q):\n%s", got.ParamsDropped, diff)
				}
			}
		})
	}
}
