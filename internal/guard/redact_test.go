package guard

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// Only the located secret is cut out of a value; when the cut leaves something a detector still
// flags (here a password assignment, scanned only when no vendor key was found), the value is
// replaced whole — span redaction never shows more than whole-value redaction did.
func TestShieldCutsSpansAndFallsBackToWhole(t *testing.T) {
	h := newHarness(t, nil)
	key := "AKIA" + "Z7QW3RTY5UIO9PLK" // split so scanners do not flag this file
	tests := []struct {
		name, params, path string
		want               func(string) bool
		hidden             []string
	}{
		{"span", `{"text":"key ` + key + ` end"}`, "text",
			func(s string) bool {
				return strings.HasPrefix(s, "key [REDACTED:aws_access_key hmac-sha256:") && strings.HasSuffix(s, "] end")
			}, []string{key}},
		{"what the cut leaves is still flagged: whole", `{"text":"key ` + key + ` db_password='Xq7pL9z2wR'"}`, "text",
			func(s string) bool { return strings.HasPrefix(s, ledger.HashPrefix) }, []string{key, "Xq7pL9z2wR"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := h.g.Check(context.Background(), h.call("save_note", tc.params))
			rec := h.recordOf(t, d.ID, "decision")
			var p map[string]string
			if err := json.Unmarshal(rec.Params, &p); err != nil {
				t.Fatalf("params %s: %v", rec.Params, err)
			}
			if !tc.want(p[tc.path]) {
				t.Errorf("stored %s = %q", tc.path, p[tc.path])
			}
			for _, r := range h.records(t) {
				for _, s := range tc.hidden {
					if strings.Contains(r, s) {
						t.Errorf("%q stored: %s", s, r)
					}
				}
			}
		})
	}
}

func TestShieldScrub(t *testing.T) {
	sh := &shield{secrets: []ledger.Secret{{Path: "$.a"}}, shown: json.RawMessage(`{}`),
		removed: longestFirst([]string{"s3cr3t\"v", "jane@x.example", "ab"})}
	tests := []struct{ in, want string }{
		{`parameter a = "jane@x.example"`, `parameter a = "[REDACTED]"`},
		{`invalid "s3cr3t\"v"`, `invalid "[REDACTED]"`}, // as %q quotes it
		{`raw s3cr3t"v here`, `raw [REDACTED] here`},    // as written
		{`short ab stays`, `short ab stays`},            // too short to be a detected value
		{`nothing to do`, `nothing to do`},
	}
	for _, tc := range tests {
		if got := sh.scrub(tc.in); got != tc.want {
			t.Errorf("scrub(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Parameters that could not be redacted: any text that may quote them is withheld.
	withheld := &shield{secrets: []ledger.Secret{{Path: "$.a"}}}
	if got := withheld.scrub("value is x"); strings.Contains(got, "x") && !strings.Contains(got, "withheld") {
		t.Errorf("unredactable parameters: scrub = %q", got)
	}
	// A scrubbed error still unwraps to its cause.
	cause := errors.New(`parse "jane@x.example"`)
	err := sh.scrubErr(cause)
	if strings.Contains(err.Error(), "jane@") || !errors.Is(err, cause) {
		t.Errorf("scrubErr = %v (is cause: %v)", err, errors.Is(err, cause))
	}
}
