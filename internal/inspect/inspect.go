// Package inspect is the runtime inspection engine: it walks a tool call's parameters (request
// direction) or a tool's result (response direction), normalises every string once, runs the
// detectors over it and derives the call's threat level from their findings.
//
// It owns Finding, Value, Detector and Engine. It must not import the policy engine, the ledger,
// transports or stores; the policy engine reads its output only through threat.Level and finding kinds.
package inspect

import (
	"context"
	"strings"
	"unsafe"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Direction says which way the inspected data travels.
type Direction uint8

const (
	// Request is a tool call's arguments on their way to the tool.
	Request Direction = iota
	// Response is a tool's result on its way back to the agent (indirect prompt injection lives here).
	Response
	// Definition is a tool's definition as a server offers it (name, title, description, input
	// schema, annotations): untrusted text for the model like a result, and read by the
	// tool-poisoning detector besides.
	Definition
)

func (d Direction) String() string {
	switch d {
	case Response:
		return "response"
	case Definition:
		return "definition"
	}
	return "request"
}

// Finding is one thing a detector saw. Kind is stable: policies name it in `findings:` conditions
// (e.g. "sql_injection", "pii.credit_card"), so a kind is never renamed once shipped.
type Finding struct {
	Kind     string       `json:"kind"`
	Severity threat.Level `json:"severity"`
	// Path is the JSON path of the value, e.g. "$.filter.region" or "$.items[2]".
	Path string `json:"path"`
	// Evidence is a short, redacted excerpt: enough for a human to see why, never the secret itself.
	Evidence string `json:"evidence"`
	// Score is the detector's confidence in [0, 1].
	Score float64 `json:"score"`
	// Detector is the Name of the detector that reported the finding; the engine fills it in.
	Detector string `json:"detector,omitempty"`
	// Spans locate what the detector matched in the value's text (Value.Raw of a string leaf),
	// as byte offsets, so that redaction can replace those bytes and leave the rest of the value
	// readable. Nil means the match could not be located in the text as received (it was in a
	// decoded layer, in an object key, or the rule is about the whole value): the whole value is
	// then redacted. TextLen is the byte length of the text the spans index. Neither is
	// serialised: they are for redaction in this process, and say nothing to a reader.
	Spans   []Span `json:"-"`
	TextLen int    `json:"-"`
	// Quoted marks a finding lowered because its text is a quotation that the text around it
	// discusses as an attack: it keeps its level but is not an independent signal for the
	// medium→high escalation (the rules and the classifier read the same quotation).
	Quoted bool `json:"-"`
	// Persona marks a rules finding lowered because the text opens with a persona set-up and
	// holds no attack part: its evidence is the set-up itself, which the classifier weighs in the
	// same text (and caps likewise), so it is not an independent signal for the escalation either.
	Persona bool `json:"-"`
}

// Span is a byte range [Start, End) of a value's text.
type Span struct {
	Start, End int
}

// mergeSpans combines the spans of two findings of one kind at one path: the union when both
// were located in the same text, otherwise nil (the whole value).
func mergeSpans(a, b Finding) ([]Span, int) {
	if a.Spans == nil || b.Spans == nil || a.TextLen != b.TextLen {
		return nil, 0
	}
	out := make([]Span, 0, len(a.Spans)+len(b.Spans))
	return append(append(out, a.Spans...), b.Spans...), a.TextLen
}

// Value is one string of the inspected JSON (a leaf, or an object key), normalised once and shared
// by every detector so that no detector decodes or folds on its own.
type Value struct {
	// Path is the JSON path of the value. In the engine it aliases the walker's path buffer: it is
	// valid while a detector looks at the value (which it must not retain), and the engine copies it
	// into the findings it keeps.
	Path string
	// Key is the name of the object member holding the value — for array elements, the member
	// holding the array ("" at the root). Detectors use it as context: a "path", a "url", a "command".
	Key string
	Raw string // the string exactly as received
	// Norm is Raw with hidden characters removed, Unicode compatibility-folded, confusables mapped to
	// ASCII and lower-cased: what the text "says" to a reader.
	Norm string
	// Decoded holds further readings of Raw — URL-, HTML-, base64- or hex-decoded layers — each
	// normalised like Norm. Detectors that look for encoded attacks scan these too.
	Decoded []string
	// DecodedFrom says, for each entry of Decoded, which decoding produced it.
	DecodedFrom []Layer
	// Hidden records the classes of invisible characters stripped from Raw, HiddenCount how many.
	Hidden      Hidden
	HiddenCount int
	// IsKey is true when the value is an object member's name rather than a string leaf.
	IsKey bool
	// Homoglyphs counts letters of other scripts folded to their Latin lookalikes inside Latin text.
	Homoglyphs int

	// foldEq caches Norm != Raw && strings.EqualFold(Norm, Raw), which several detectors ask to
	// skip a reading that differs from another only in case: foldSame or foldDiffer when
	// normalizeValue filled it in, 0 for a Value built by hand (then it is computed on demand).
	foldEq uint8
	// keyFacts remembers what detectors learnt about Key (see nameFact); the engine carries it
	// from one value to the next while the key stays the same.
	keyFacts factMemo
	// chars is the charSet of Raw (0 when not computed: a Value built by hand).
	chars charSet
}

// readingChars returns the charSet of r, a reading of v: the one normalisation computed when r
// is Raw, or Norm of an ASCII Raw (the same bytes but for case); otherwise it scans r.
func (v *Value) readingChars(r string) charSet {
	if v.chars != 0 && v.chars&charNonASCII == 0 {
		if v.foldEq == foldSame && len(r) == len(v.Norm) && unsafe.StringData(r) == unsafe.StringData(v.Norm) {
			// Norm itself, Raw lower-cased (known without comparing the two).
			if v.chars&charUpper != 0 {
				return v.chars&^charUpper | charLower
			}
			return v.chars
		}
		if len(r) == len(v.Raw) && r == v.Raw {
			return v.chars
		}
		if len(r) == len(v.Norm) && r == v.Norm && (r == v.Raw || v.normFoldsRaw()) {
			if v.chars&charUpper != 0 {
				return v.chars&^charUpper | charLower
			}
			return v.chars
		}
	}
	return charsOf(r)
}

const (
	foldSame   uint8 = 1
	foldDiffer uint8 = 2
)

// normFoldsRaw reports Norm != Raw && strings.EqualFold(Norm, Raw): Norm is Raw with only the
// case changed.
func (v *Value) normFoldsRaw() bool {
	switch v.foldEq {
	case foldSame:
		return true
	case foldDiffer:
		return false
	}
	return v.Norm != v.Raw && strings.EqualFold(v.Norm, v.Raw)
}

// foldsRaw reports r != v.Raw && strings.EqualFold(r, v.Raw) for a reading r of v, using the
// cached answer when r is Norm.
func (v *Value) foldsRaw(r string) bool {
	if r == v.Norm {
		return v.normFoldsRaw()
	}
	return r != v.Raw && strings.EqualFold(r, v.Raw)
}

// Call is the context a detector sees besides the value: the tool, the direction and the call's size.
type Call struct {
	Tool      string
	Direction Direction
	Size      int // bytes of the inspected JSON
	// Config is the engine's configuration (roots for the path detector, shell-like tools, ...).
	// Never nil when the engine calls a detector.
	Config *Config
	// Context is the caller's context: detectors that wait (DNS resolution) honour its deadline.
	Context context.Context

	// toolFacts remembers what detectors learnt about Tool (see nameFact).
	toolFacts factMemo
	// shellBy and shellTool remember the answer of the shell-tool matcher shellBy for Tool.
	shellBy   *toolMatcher
	shellTool bool
}

// Detector inspects one value and reports what it finds. Detectors must be safe for concurrent use,
// bounded in time by the size of the value, and must not retain v after returning.
type Detector interface {
	// Name is the detector's family name ("sql", "path", "pii", ...), used in evaluation reports.
	Name() string
	Inspect(c *Call, v *Value, report func(Finding))
}
