package guard

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxToolNameLen is the longest tool name, in bytes, that Check accepts.
const MaxToolNameLen = 256

// ValidToolName reports why name cannot be a tool name: empty, longer than MaxToolNameLen bytes,
// not valid UTF-8, or holding a character that is not printable (unicode.IsPrint: letters, marks,
// numbers, punctuation, symbols and the ASCII space — so no control characters, line or paragraph
// separators, bidi overrides or zero-width characters). A tool name becomes a metric label, a log
// field, a ledger field and a policy match subject: it must be bounded and must not be able to
// forge lines or hide text. The error never quotes the name.
func ValidToolName(name string) error {
	switch {
	case name == "":
		return errors.New("tool name is empty")
	case len(name) > MaxToolNameLen:
		return fmt.Errorf("tool name is %d bytes; the limit is %d", len(name), MaxToolNameLen)
	case !utf8.ValidString(name):
		return errors.New("tool name is not valid UTF-8")
	}
	for i, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("tool name holds the non-printable character %U at byte %d", r, i)
		}
	}
	return nil
}

// recordedNameBudget bounds the escaped part of an invalid name as recorded; the suffix that
// gives the original length follows it.
const recordedNameBudget = 160

// RecordedToolName is the form in which a name is recorded, logged and reported: a valid name
// unchanged; an invalid one cut to its first bytes with every non-printable character, invalid
// byte and backslash escaped (\n, \u202e, \xff, \\), followed by "…" and the original length.
// The result is itself a valid tool name, so it is safe wherever a name goes.
func RecordedToolName(name string) string {
	if ValidToolName(name) == nil {
		return name
	}
	if name == "" {
		return "(empty)"
	}
	var b strings.Builder
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		var piece string
		switch {
		case r == utf8.RuneError && size <= 1:
			piece = fmt.Sprintf(`\x%02x`, name[i])
		case r == '\\':
			piece = `\\`
		case r == '\n':
			piece = `\n`
		case r == '\r':
			piece = `\r`
		case r == '\t':
			piece = `\t`
		case !unicode.IsPrint(r):
			piece = fmt.Sprintf(`\u%04x`, r)
		default:
			piece = name[i : i+size]
		}
		if b.Len()+len(piece) > recordedNameBudget {
			break
		}
		b.WriteString(piece)
		i += size
	}
	fmt.Fprintf(&b, "…[%d bytes]", len(name))
	return b.String()
}
