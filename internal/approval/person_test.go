package approval

import (
	"testing"
	"unicode/utf8"
)

func TestSamePerson(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"alice@example.com", "alice@example.com", true},
		{"alice@example.com", "alice@example.com ", true},
		{"alice@example.com", "\talice@example.com\n", true},
		{"alice@example.com", "ALICE@Example.COM", true},
		{"alice@example.com", "\uff41\uff4c\uff49\uff43\uff45@example.com", true},      // fullwidth
		{"alice@example.com", "\uff21\uff2c\uff29\uff23\uff25\uff20example.com", true}, // fullwidth capitals and @
		{"alice@example.com", "\u00a0alice@example.com\u3000", true},                   // no-break and ideographic spaces
		{"alice@example.com", "al\u200bice@exam\u00adple.com\ufeff", true},             // zero-width space, soft hyphen, BOM
		{"strasse", "STRASSE", true},
		{"straße", "STRASSE", true}, // full case folding
		{"alice@example.com", "alice@example.org", false},
		{"alice@example.com", "alice.@example.com", false},
		{"alice", "bob", false},
		{"", "", false},
		{" ", "\u200b", false},
	}
	for _, tt := range tests {
		if got := SamePerson(tt.a, tt.b); got != tt.same {
			t.Errorf("SamePerson(%q, %q) = %v, want %v (folded %q and %q)", tt.a, tt.b, got, tt.same, FoldID(tt.a), FoldID(tt.b))
		}
		if SamePerson(tt.a, tt.b) != SamePerson(tt.b, tt.a) {
			t.Errorf("SamePerson(%q, %q) is not symmetric", tt.a, tt.b)
		}
	}
}

// FuzzFoldID: folding is total, keeps valid UTF-8 valid, and is idempotent, so that folding an
// already folded ID (as a stored vote is compared with a new approver) changes nothing.
func FuzzFoldID(f *testing.F) {
	for _, s := range []string{"alice@example.com", " ALICE@example.com\u3000", "\uff41\uff4c\uff49\uff43\uff45", "straße", "ǅ", "ﬃ", "\u0130", "\u1e9e", "al\u200bice", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once := FoldID(s)
		if utf8.ValidString(s) && !utf8.ValidString(once) {
			t.Fatalf("FoldID(%q) = %q is not UTF-8", s, once)
		}
		if twice := FoldID(once); twice != once {
			t.Fatalf("FoldID is not idempotent on %q: %q then %q", s, once, twice)
		}
		if once != "" && !SamePerson(s, once) {
			t.Fatalf("%q is not the same person as its folded form %q", s, once)
		}
	})
}
