package guard

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// A tool name is at most 256 bytes of valid UTF-8 printable characters. Anything else is refused
// by Check itself — so every transport (HTTP, MCP, LLM gateway, SDK) gets it — recorded as a DENY
// with the name cut and escaped, never stored or echoed whole.
func TestCheckRefusesInvalidToolNames(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	huge := strings.Repeat("A", 500<<10)
	tests := []struct {
		name, tool string
		code       string // "" = the name is fine (the policy decides)
	}{
		{"500 KB", huge, CodeInvalidToolName},
		{"257 bytes", strings.Repeat("a", 257), CodeInvalidToolName},
		{"256 bytes", strings.Repeat("a", 256), ""},
		{"newline", "fetch_sales_data\nx", CodeInvalidToolName},
		{"trailing newline", "fetch_sales_data\n", CodeInvalidToolName},
		{"carriage return", "fetch\rsales", CodeInvalidToolName},
		{"NUL", "fetch\x00", CodeInvalidToolName},
		{"tab", "fetch\tsales", CodeInvalidToolName},
		{"DEL", "fetch\x7f", CodeInvalidToolName},
		{"C1 control", "fetch\u0085", CodeInvalidToolName},
		{"bidi override", "fetch_\u202esales", CodeInvalidToolName},
		{"zero-width space", "fetch\u200bsales", CodeInvalidToolName},
		{"invalid UTF-8", "fetch\xff", CodeInvalidToolName},
		{"empty", "", CodeInvalidToolName},
		{"unicode letters", "données_clients", ""},
		{"dots, slashes, spaces", "github/repos.list files", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := h.g.Check(ctx, h.call(tc.tool, `{"query_type":"monthly"}`))
			if d.Action != policy.Deny {
				t.Fatalf("action %v", d.Action)
			}
			if d.Code != tc.code {
				t.Fatalf("code %q (%v), want %q", d.Code, d.Err, tc.code)
			}
			r := h.recordOf(t, d.ID, string(ledger.KindDecision))
			if r.Decision != "deny" {
				t.Errorf("recorded %q", r.Decision)
			}
			if tc.code == "" {
				if r.Tool != tc.tool || d.Tool != tc.tool {
					t.Errorf("valid name recorded as %q", r.Tool)
				}
				return
			}
			for _, got := range []string{r.Tool, d.Tool} {
				if len(got) > 2*MaxToolNameLen || !utf8.ValidString(got) || strings.ContainsAny(got, "\n\r\x00\u202e") {
					t.Errorf("invalid name recorded as %d bytes %q", len(got), got[:min(len(got), 80)])
				}
				if got == "" {
					t.Error("invalid name recorded as empty")
				}
			}
			if r.Agent == nil || !r.Agent.Verified || r.Agent.ID != "report-generator-v1" {
				t.Errorf("record does not name the authenticated agent: %+v", r.Agent)
			}
		})
	}

	// An unauthenticated caller's long name is not recorded whole either.
	d := h.g.Check(ctx, Request{Tool: huge, Params: json.RawMessage(`{}`)})
	if d.Action != policy.Deny || d.Code != "credential_missing" {
		t.Fatalf("unauthenticated: %v %q", d.Action, d.Code)
	}
	if r := h.recordOf(t, d.ID, string(ledger.KindDecision)); len(r.Tool) > 2*MaxToolNameLen {
		t.Errorf("unauthenticated call's name recorded with %d bytes", len(r.Tool))
	}

	// Outcomes: a reported tool name is checked the same way.
	ok := h.g.Check(ctx, h.call("fetch_sales_data", `{"query_type":"monthly"}`))
	if !ok.Allowed() {
		t.Fatalf("setup: %v %q", ok.Action, ok.Code)
	}
	rd := withRP(h.g, ResultPolicy{}).CheckResult(ctx, Outcome{DecisionID: ok.ID, Token: ok.OutcomeToken, Source: "test", Credentials: identity.Credentials{APIKey: h.key},
		Tool: huge, Ran: true, Success: true})
	if rd.Action != ResultBlock || rd.Code != CodeInvalidToolName {
		t.Fatalf("outcome with a 500 KB tool name: %v %q", rd.Action, rd.Code)
	}
	for _, data := range h.records(t) {
		if len(data) > 64<<10 {
			t.Fatalf("a record of %d bytes: the name was stored whole", len(data))
		}
	}
}

func TestValidToolName(t *testing.T) {
	for _, s := range []string{"a", "fetch_sales_data", "x/y.z-1", "données", "名前", "a b", strings.Repeat("é", 128)} {
		if err := ValidToolName(s); err != nil {
			t.Errorf("%q refused: %v", s, err)
		}
	}
	for _, s := range []string{"", "a\n", "\x1b[31m", "a\u2028b", "\ufeffa", strings.Repeat("é", 129), "\xc3", "a\u00adb"} {
		if err := ValidToolName(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func FuzzValidToolName(f *testing.F) {
	for _, s := range []string{"fetch_sales_data", "a\nb", "\xff", "", strings.Repeat("a", 300), "a\u202eb", "données"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidToolName(s)
		shown := RecordedToolName(s)
		if err == nil {
			if s == "" || len(s) > MaxToolNameLen || !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\n\r\t\x7f") {
				t.Fatalf("accepted %q", s)
			}
			if shown != s {
				t.Fatalf("valid name %q shown as %q", s, shown)
			}
			return
		}
		if shown == "" || len(shown) > 2*MaxToolNameLen || !utf8.ValidString(shown) || ValidToolName(shown) != nil {
			t.Fatalf("invalid name %q shown as %q", s, shown)
		}
	})
}
