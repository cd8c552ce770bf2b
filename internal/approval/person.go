package approval

import (
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// FoldID returns the form of a person's ID in which IDs that a human reader cannot tell apart are
// equal: compatibility-normalised (NFKC: fullwidth "ａｌｉｃｅ" is "alice"), case-folded, without
// invisible format characters (zero-width spaces and joiners, soft hyphens, BOMs), and trimmed of
// white space (including the non-breaking and ideographic spaces NFKC turns into spaces).
//
// It is for refusals only — an approver who may be the invoking user, a duplicate vote — where
// treating two people as one costs a second approver, while treating one person as two lets
// someone approve their own call. It never identifies anyone: principals are compared exactly.
func FoldID(s string) string {
	s = norm.NFKC.String(s)
	s = cases.Fold().String(s) // a Caser keeps state: one per call, never shared
	s = norm.NFKC.String(s)
	s = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// SamePerson reports whether a and b may name the same person (see FoldID). Two empty IDs are
// not a person.
func SamePerson(a, b string) bool {
	fa, fb := FoldID(a), FoldID(b)
	return fa != "" && fa == fb
}
