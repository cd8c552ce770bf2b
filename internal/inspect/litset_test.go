package inspect

import (
	"strings"
	"testing"
)

// naiveFind is the reference: the earliest end offset of any literal.
func naiveFind(s string, lits []string) (int, bool) {
	best := -1
	for _, l := range lits {
		if i := strings.Index(s, l); i >= 0 && (best < 0 || i+len(l) < best) {
			best = i + len(l)
		}
	}
	return best, best >= 0
}

func TestLitSet(t *testing.T) {
	lits := []string{"he", "she", "his", "hers", "rm -", "<|im_start|>", "a"}
	ls := newLitSet(lits...)
	for _, s := range []string{"", "ushers", "xyz", "this is", "run rm -rf", "<|im_start|>", "b", "shhe", "hi"} {
		wantEnd, wantOK := naiveFind(s, lits)
		end, lit, ok := ls.find(s)
		if ok != wantOK || ok && end != wantEnd {
			t.Errorf("find(%q) = %d %q %v, want %d %v", s, end, lit, ok, wantEnd, wantOK)
		}
		if ok && !strings.HasSuffix(s[:end], lit) {
			t.Errorf("find(%q): literal %q does not end at %d", s, lit, end)
		}
	}
}

func FuzzLitSet(f *testing.F) {
	f.Add("ushers", "he,she,hers")
	f.Add("aaab", "aab,b")
	f.Fuzz(func(t *testing.T, s, list string) {
		var lits []string
		for _, l := range strings.Split(list, ",") {
			if l != "" {
				lits = append(lits, l)
			}
		}
		if len(lits) == 0 || len(lits) > 20 {
			return
		}
		ls := newLitSet(lits...)
		wantEnd, wantOK := naiveFind(s, lits)
		end, _, ok := ls.find(s)
		if ok != wantOK || ok && end != wantEnd {
			t.Fatalf("find(%q) in %q = %d %v, want %d %v", s, lits, end, ok, wantEnd, wantOK)
		}
	})
}

func FuzzFirstNonASCII(f *testing.F) {
	for _, s := range []string{"", "abc", "abcdefgh\x80", "0123456789abcdef", "é", "abcdefghijklmnoé"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := -1
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				want = i
				break
			}
		}
		if got := firstNonASCII(s); got != want {
			t.Fatalf("firstNonASCII(%q) = %d, want %d", s, got, want)
		}
	})
}

// FuzzReadingChars checks that the charSet a detector gets for a reading of a value is the set of
// byte classes of that reading, whichever reading it is.
func FuzzReadingChars(f *testing.F) {
	for _, s := range []string{"", "Meeting 3 with the team.", "a;b|c", "ÀB\x00c", "%41%42", "UPPER lower 09"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := NewValue("$.x", "x", s)
		readings(&v, func(r string) bool {
			want := charKnown
			for i := 0; i < len(r); i++ {
				want |= charBits[r[i]]
			}
			if got := v.readingChars(r); got != want {
				t.Fatalf("readingChars(%q) of %q = %x, want %x", r, s, got, want)
			}
			return true
		})
	})
}

// FuzzPlainProseChars checks the charSet shortcut of plainProse against plainProse itself.
func FuzzPlainProseChars(f *testing.F) {
	for _, s := range []string{"see the report. then go", "a . b ? c", "up one level: cd ..", "x ?? y", "0x2e0x2e/ a", "0X1 b", "café . x", "a\x00 b", "a\x01 b", "nospace"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := plainProseChars(s, charsOf(s)), plainProse(s); got != want {
			t.Fatalf("plainProseChars(%q) = %v, plainProse says %v", s, got, want)
		}
	})
}

// FuzzSWAR checks the eight-bytes-at-a-time tests against byte-by-byte ones.
func FuzzSWAR(f *testing.F) {
	f.Add("abcdefgh", byte('"'), 0)
	f.Add("\x00\x7f\x80\xff 09:/", byte(0), 3)
	f.Fuzz(func(t *testing.T, s string, c byte, from int) {
		if len(s) >= 8 {
			x := load8(s, 0)
			var less, eq, digit bool
			for i := 0; i < 8; i++ {
				less = less || s[i] < 0x20
				eq = eq || s[i] == c
				digit = digit || s[i] >= '0' && s[i] <= '9'
			}
			if hasLess(x, 0x20) != less || hasByte(x, c) != eq || hasDigit(x) != digit {
				t.Fatalf("%q: hasLess %v/%v hasByte(%q) %v/%v hasDigit %v/%v", s[:8], hasLess(x, 0x20), less, c, hasByte(x, c), eq, hasDigit(x), digit)
			}
		}
		if from < 0 || from > len(s) {
			return
		}
		want := len(s)
		for i := from; i < len(s); i++ {
			if s[i] >= '0' && s[i] <= '9' {
				want = i
				break
			}
		}
		if got := nextDigit(s, from); got != want {
			t.Fatalf("nextDigit(%q, %d) = %d, want %d", s, from, got, want)
		}
	})
}

// FuzzCharsOf checks charsOf, whose eight-byte shortcut handles lower-case words and spaces,
// against the table applied to every byte.
func FuzzCharsOf(f *testing.F) {
	for _, s := range []string{"", "the team met today", "        ", "abcdefgh", "abcdefg{", "`abcdefg", "aaaa aaa\x80zzzzzzzz ",
		"The team's review found that shipping times improved, and we'd like", "zzzzzzzz{{{{{{{{        aaaaaaaa"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := charKnown
		for i := 0; i < len(s); i++ {
			want |= charBits[s[i]]
		}
		if got := charsOf(s); got != want {
			t.Fatalf("charsOf(%q) = %x, want %x", s, got, want)
		}
	})
}
