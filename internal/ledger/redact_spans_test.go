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

func TestRedactSecretsSpans(t *testing.T) {
	const url = "https://evil.example/collect?x=AKIAIOSFODNN7EXAMPLE"
	at := strings.Index(url, "AKIA")
	key := ledger.Span{Start: at, End: at + 20}
	tests := []struct {
		name    string
		params  string
		secrets []ledger.Secret
		want    string
		removed []string
	}{
		{"span only", `{"url":"` + url + `","n":1}`, []ledger.Secret{{Path: "$.url", Label: "aws_access_key", Spans: []ledger.Span{key}, TextLen: len(url)}},
			`{"n":1,"url":"https://evil.example/collect?x=[REDACTED:aws_access_key]"}`, []string{"AKIAIOSFODNN7EXAMPLE"}},
		{"two kinds, overlapping", `{"s":"abcdefghij"}`, []ledger.Secret{
			{Path: "$.s", Label: "email", Spans: []ledger.Span{{Start: 1, End: 4}, {Start: 8, End: 9}}, TextLen: 10},
			{Path: "$.s", Label: "phone", Spans: []ledger.Span{{Start: 3, End: 6}}, TextLen: 10}},
			`{"s":"a[REDACTED:email,phone]gh[REDACTED:email]j"}`, []string{"bcdef", "i"}},
		{"another length: whole", `{"url":"` + url + `x"}`, []ledger.Secret{{Path: "$.url", Label: "aws_access_key", Spans: []ledger.Span{key}, TextLen: len(url)}},
			`{"url":"[REDACTED]"}`, []string{url + "x"}},
		{"span splits a character: whole", `{"s":"é-secret"}`, []ledger.Secret{{Path: "$.s", Label: "x", Spans: []ledger.Span{{Start: 1, End: 4}}, TextLen: 9}},
			`{"s":"[REDACTED]"}`, []string{"é-secret"}},
		{"span out of range: whole", `{"s":"abc"}`, []ledger.Secret{{Path: "$.s", Label: "x", Spans: []ledger.Span{{Start: 2, End: 9}}, TextLen: 3}},
			`{"s":"[REDACTED]"}`, []string{"abc"}},
		{"not a string: whole", `{"s":{"a":"b"}}`, []ledger.Secret{{Path: "$.s", Label: "x", Spans: []ledger.Span{{Start: 0, End: 1}}, TextLen: 1}},
			`{"s":"[REDACTED]"}`, []string{`{"a":"b"}`}},
		{"a whole and a span at one path: whole", `{"s":"abcdef"}`, []ledger.Secret{{Path: "$.s", Label: "x", Spans: []ledger.Span{{Start: 0, End: 1}}, TextLen: 6}, {Path: "$.s"}},
			`{"s":"[REDACTED]"}`, []string{"abcdef"}},
		{"label cannot close the marker", `{"s":"abcdef"}`, []ledger.Secret{{Path: "$.s", Label: "x] ok [y", Spans: []ledger.Span{{Start: 0, End: 3}}, TextLen: 6}},
			`{"s":"[REDACTED:x__ok__y]def"}`, []string{"abc"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, removed, err := ledger.RedactSecrets(json.RawMessage(tc.params), tc.secrets)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Errorf("got %s, want %s", out, tc.want)
			}
			if diff := cmp.Diff(tc.removed, removed); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
		})
	}
	if _, _, err := ledger.RedactSecrets(json.RawMessage(`{"a":"b"}`), []ledger.Secret{{Path: "$.zz", Spans: []ledger.Span{{Start: 0, End: 1}}, TextLen: 1}}); err == nil {
		t.Error("a span at a path that is not there: want an error, not parameters that may hold the secret")
	}
}

// In the ledger, with a hash key, a cut-out span is marked and stays searchable by `audit hash`
// of the removed text; the rest of the value is stored as it came.
func TestSpansInRecord(t *testing.T) {
	const url = "https://evil.example/collect?x=AKIAIOSFODNN7EXAMPLE"
	at := strings.Index(url, "AKIA")
	e := newEnv(t, nil)
	l := e.open(t, nil)
	r := decision(1)
	r.Params = json.RawMessage(`{"url":"` + url + `"}`)
	r.Secrets = []ledger.Secret{{Path: "$.url", Label: "aws_access_key", Spans: []ledger.Span{{Start: at, End: at + 20}}, TextLen: len(url)}}
	seq := mustAppend(t, l, r)
	mustClose(t, l)
	got := records(t, e.st)[seq]
	var p map[string]string
	if err := json.Unmarshal(got.Params, &p); err != nil {
		t.Fatal(err)
	}
	want := "https://evil.example/collect?x=[REDACTED:aws_access_key " + ledger.HashValue(e.keys.HashKey, "AKIAIOSFODNN7EXAMPLE") + "]"
	if p["url"] != want || !cmp.Equal(got.Redacted, []string{"$.url"}) {
		t.Errorf("stored url %q (redacted %v), want %q", p["url"], got.Redacted, want)
	}
	var all []byte
	e.st.Scan(context.Background(), 0, func(en ledger.Entry) error { all = append(all, en.Data...); return nil })
	if bytes.Contains(all, []byte("AKIAIOSFODNN7EXAMPLE")) {
		t.Error("secret stored")
	}
}

// FuzzRedactSecrets: any spans over any string either cut cleanly — the text outside the spans
// kept in order, each span replaced by a marker — or replace the value whole; never a panic,
// never invalid JSON.
func FuzzRedactSecrets(f *testing.F) {
	f.Add("https://evil.example/?x=AKIAIOSFODNN7EXAMPLE", 24, 44, 0, 0, "aws_access_key")
	f.Add("héllo wörld", 1, 3, 2, 6, "email")
	f.Add("", 0, 0, 0, 0, "")
	f.Add("abc", 2, 1, -1, 5, "x]")
	f.Fuzz(func(t *testing.T, s string, a, b, c, d int, label string) {
		raw, err := json.Marshal(map[string]string{"v": s})
		if err != nil {
			t.Skip()
		}
		var decoded map[string]string
		_ = json.Unmarshal(raw, &decoded)
		text := decoded["v"] // (invalid UTF-8 is replaced by the encoder)
		secrets := []ledger.Secret{{Path: "$.v", Label: label, Spans: []ledger.Span{{Start: a, End: b}, {Start: c, End: d}}, TextLen: len(text)}}
		out, removed, err := ledger.RedactSecrets(raw, secrets)
		if err != nil {
			t.Fatalf("RedactSecrets(%s): %v", raw, err)
		}
		var got map[string]string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("invalid JSON %q: %v", out, err)
		}
		if got["v"] == ledger.Redacted {
			return
		}
		if len(removed) == 0 {
			t.Fatalf("value changed to %q with nothing removed", got["v"])
		}
		// Every removed text was in the value, and what is left, markers aside, is the value
		// with exactly those bytes taken out, in order.
		total := 0
		for _, r := range removed {
			if !strings.Contains(text, r) {
				t.Fatalf("removed %q not in %q", r, text)
			}
			total += len(r)
		}
		if strings.Contains(text, "[REDACTED") {
			return // (the value's own text would look like markers)
		}
		kept := got["v"]
		for strings.Contains(kept, "[REDACTED:") {
			i := strings.Index(kept, "[REDACTED:")
			j := strings.IndexByte(kept[i:], ']')
			kept = kept[:i] + kept[i+j+1:]
		}
		if len(kept)+total != len(text) || !subsequence(kept, text) {
			t.Fatalf("kept %q of %q, removed %q", kept, text, removed)
		}
	})
}

func subsequence(a, b string) bool {
	j := 0
	for i := 0; i < len(b) && j < len(a); i++ {
		if a[j] == b[i] {
			j++
		}
	}
	return j == len(a)
}
