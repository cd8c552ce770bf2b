package guard

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// withheldParams is what approvers see of parameters that could not be redacted safely.
var withheldParams = json.RawMessage(`{"_withheld":"parameters could not be redacted"}`)

// withheldValue is what an explanation quotes of a parameter when the parameters could not be
// redacted safely.
const withheldValue = "[withheld]"

// shield is the redaction of one inspected JSON value (a call's parameters, a tool's result):
// what the ledger is told to redact, the value as records and approvers may show it, and the
// texts removed from it, which are kept out of every free text quoting the value as well
// (explanations, condition errors, denial reasons, error messages in logs).
type shield struct {
	// secrets are the ledger's redaction directives: located spans of flagged strings, or whole
	// values.
	secrets []ledger.Secret
	// shown is the value with secrets replaced; nil when it could not be redacted safely, and then
	// nothing of it may be shown.
	shown json.RawMessage
	// removed are the texts taken out, longest first.
	removed []string
}

// shieldFor plans the redaction of raw, inspected in direction dir with findings fs. Secret and
// PII findings that a detector located are cut out of their string; the rest are replaced whole.
// The redacted value is inspected again: anything secret or personal still found there (a second
// credential a detector did not locate, an address a span missed) has its whole value replaced,
// so that cutting out spans can never show more than replacing whole values did.
//
// parsed, when set, is raw as the guard's one parse of a call's parameters decoded it: the first
// redaction works on it rather than parsing raw again.
func (g *Guard) shieldFor(ctx context.Context, tool string, dir inspect.Direction, raw json.RawMessage, parsed map[string]any, fs []inspect.Finding) *shield {
	secrets := secretsOf(fs)
	if len(secrets) == 0 {
		return &shield{shown: raw}
	}
	for round := 0; ; round++ {
		out, removed, err := ledger.RedactSecretsIn(raw, parsed, secrets)
		if err != nil {
			// The ledger withholds the parameters for the same reason; show nothing either.
			return &shield{secrets: secrets}
		}
		if !hasSpans(secrets) {
			return &shield{secrets: secrets, shown: out, removed: longestFirst(removed)}
		}
		if round == 2 {
			// Still finding more after two rounds: no spans at all, every flagged value whole.
			secrets = whole(secrets)
			continue
		}
		res, err := g.inspector.Inspect(ctx, tool, dir, out)
		if err != nil {
			secrets = whole(secrets)
			continue
		}
		again := secretsOf(res.Findings)
		if len(again) == 0 {
			return &shield{secrets: secrets, shown: out, removed: longestFirst(removed)}
		}
		for _, s := range again {
			secrets = append(secrets, ledger.Secret{Path: s.Path, Label: s.Label}) // whole
		}
	}
}

// secretsOf turns secret and PII findings into redaction directives.
func secretsOf(fs []inspect.Finding) []ledger.Secret {
	var out []ledger.Secret
	for _, f := range fs {
		label, ok := strings.CutPrefix(f.Kind, "secret.")
		if !ok {
			if label, ok = strings.CutPrefix(f.Kind, "pii."); !ok {
				continue
			}
		}
		s := ledger.Secret{Path: f.Path, Label: label}
		if len(f.Spans) > 0 {
			s.TextLen = f.TextLen
			s.Spans = make([]ledger.Span, len(f.Spans))
			for i, sp := range f.Spans {
				s.Spans[i] = ledger.Span{Start: sp.Start, End: sp.End}
			}
		}
		out = append(out, s)
	}
	return out
}

func hasSpans(ss []ledger.Secret) bool {
	for _, s := range ss {
		if len(s.Spans) > 0 {
			return true
		}
	}
	return false
}

func whole(ss []ledger.Secret) []ledger.Secret {
	out := make([]ledger.Secret, len(ss))
	for i, s := range ss {
		out[i] = ledger.Secret{Path: s.Path, Label: s.Label}
	}
	return out
}

// minScrub is the shortest removed text scrubbed from free text: shorter ones are no detected
// secret or personal datum, and replacing them everywhere would garble the text.
const minScrub = 4

func longestFirst(texts []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range texts {
		if len(t) >= minScrub && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// paramsForApprovers is the copy of the parameters the approval store keeps and approvers see.
func (s *shield) paramsForApprovers() json.RawMessage {
	if s == nil || s.shown == nil {
		return withheldParams
	}
	return s.shown
}

// display returns what explanations quote for a parameter: its value in the redacted copy.
func (s *shield) display() func(path []string) any {
	if s == nil || len(s.secrets) == 0 {
		return nil
	}
	if s.shown == nil {
		return func([]string) any { return withheldValue }
	}
	// The redacted copy is read only if an explanation quotes a parameter.
	var m map[string]any
	var err error
	return func(path []string) any {
		if m == nil && err == nil {
			if m, err = decodeParams(s.shown); err != nil {
				return withheldValue
			}
		}
		if err != nil {
			return withheldValue
		}
		var cur any = m
		for _, seg := range path {
			o, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			if cur, ok = o[seg]; !ok {
				return nil
			}
		}
		return cur
	}
}

// scrub replaces in text every removed text, as written and as quoted in Go or JSON strings
// (error messages quote values with %q). When the value could not be redacted at all, nothing
// it held is known, and a text that might quote it is replaced whole.
func (s *shield) scrub(text string) string {
	if s == nil || text == "" {
		return text
	}
	if s.shown == nil && len(s.secrets) > 0 {
		return "[text withheld: it may quote parameters that could not be redacted]"
	}
	for _, r := range s.removed {
		for _, form := range scrubForms(r) {
			if strings.Contains(text, form) {
				text = strings.ReplaceAll(text, form, ledger.Redacted)
			}
		}
	}
	return text
}

func scrubForms(r string) []string {
	forms := []string{r}
	q := strconv.Quote(r)
	if q = q[1 : len(q)-1]; q != r {
		forms = append(forms, q)
	}
	if b, err := json.Marshal(r); err == nil {
		if j := string(b[1 : len(b)-1]); j != r && j != q {
			forms = append(forms, j)
		}
	}
	if a := strconv.QuoteToASCII(r); a[1:len(a)-1] != r && a[1:len(a)-1] != q {
		forms = append(forms, a[1:len(a)-1])
	}
	return forms
}

// scrubbedError is an error whose text has been scrubbed of parameter values, for logs; it still
// unwraps to the cause so that callers can branch on it.
type scrubbedError struct {
	text  string
	cause error
}

func (e *scrubbedError) Error() string { return e.text }
func (e *scrubbedError) Unwrap() error { return e.cause }

// scrubErr returns err with its text scrubbed, or err itself when nothing needed scrubbing.
func (s *shield) scrubErr(err error) error {
	if err == nil || s == nil {
		return err
	}
	text := err.Error()
	if t := s.scrub(text); t != text {
		return &scrubbedError{text: t, cause: err}
	}
	return err
}
