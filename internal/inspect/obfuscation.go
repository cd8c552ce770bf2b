package inspect

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Obfuscated spellings of an instruction that a reader (a model) still understands and the
// tokenizer would not: letters spaced out, leetspeak digits, ROT13, text written backwards, and an
// identifier-shaped object key. Each is a further reading of a value for the injection detector
// only; a reading is made only when the text shows the trait, so ordinary text costs a scan.

// obfuscatedReadings calls fn with each de-obfuscated reading of v and its name; none when the
// plain reading already held an instruction (plainHit).
func obfuscatedReadings(v *Value, plainHit bool, fn func(name, text string)) {
	t := v.Norm
	if plainHit || len(t) < 8 || len(t) > 16<<10 {
		return
	}
	if v.IsKey {
		if k := keyWords(v.Raw); k != "" {
			fn("identifier", k)
		}
		return
	}
	if s, ok := unspace(t); ok {
		fn("spaced letters", s)
	}
	if s, ok := unleet(t); ok {
		fn("leetspeak", s)
	}
	if rot13Hint(t) {
		fn("rot13", rot13(t))
	}
	if reversedHint(t) {
		fn("reversed", reverse(t))
	}
}

// keyWords splits an identifier into words ("ignore_previous_instructions",
// "ignorePreviousInstructions", "ignore-previous-instructions"); "" when it has fewer than three.
func keyWords(k string) string {
	var b strings.Builder
	words := 1
	for i, r := range k {
		switch {
		case r == '_' || r == '-' || r == '.':
			if b.Len() > 0 {
				b.WriteByte(' ')
				words++
			}
		case unicode.IsUpper(r) && i > 0:
			b.WriteByte(' ')
			words++
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	if words < 3 {
		return ""
	}
	return b.String()
}

// unspace joins letters written one at a time ("i g n o r e  a l l"): a run of at least eight
// single letters separated by single spaces becomes a word; wider gaps separate words.
func unspace(t string) (string, bool) {
	singles, run := 0, 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		if isASCIILetter(rune(c)) && (i == 0 || t[i-1] == ' ') && (i+1 == len(t) || t[i+1] == ' ') {
			run++
			singles = max(singles, run)
		} else if c != ' ' {
			run = 0
		}
	}
	if singles < 8 {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c == ' ' {
			j := i
			for j < len(t) && t[j] == ' ' {
				j++
			}
			if j-i >= 2 || !(i > 0 && j < len(t) && isASCIILetter(rune(t[i-1])) && isASCIILetter(rune(t[j])) &&
				(i < 2 || t[i-2] == ' ') && (j+1 >= len(t) || t[j+1] == ' ')) {
				b.WriteByte(' ')
			}
			i = j - 1
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// leet maps the digits and symbols of leetspeak to the letters they stand for.
var leet = [256]byte{'0': 'o', '1': 'i', '3': 'e', '4': 'a', '5': 's', '7': 't', '@': 'a', '$': 's', '!': 'i', '|': 'l'}

// unleet rewrites words that mix letters with leetspeak digits ("1gn0r3 411 pr3v10u5"); it
// reports false, without allocating, when no word does.
func unleet(t string) (string, bool) {
	var b []byte
	for i := 0; i < len(t); {
		j := i
		letters, subs := 0, 0
		for j < len(t) && (isASCIILetter(rune(t[j])) || leet[t[j]] != 0) {
			if t[j] >= '0' && t[j] <= '9' {
				subs++ // symbols (@, $, !, |) count only in a word that also has a digit
			} else if leet[t[j]] == 0 {
				letters++
			}
			j++
		}
		if j == i {
			i++
			continue
		}
		if subs > 0 && letters > 0 && j-i >= 3 {
			if b == nil {
				b = []byte(t)
			}
			for k := i; k < j; k++ {
				if c := leet[b[k]]; c != 0 {
					b[k] = c
				}
			}
		}
		i = j
	}
	if b == nil {
		return "", false
	}
	return string(b), true
}

// rot13Words are override and extraction words in ROT13 ("ignore", "instructions", ...).
var rot13Words = newLitSet("vtaber", "vafgehpgvbaf", "cerivbhf", "cebzcg", "qvfertneq", "sbetrg", "flfgrz", "eriryny")

func rot13Hint(t string) bool { return rot13Words.contains(t) }

func rot13(t string) string {
	b := []byte(t)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = 'a' + (c-'a'+13)%26
		case c >= 'A' && c <= 'Z':
			b[i] = 'A' + (c-'A'+13)%26
		}
	}
	return string(b)
}

// reversedWords are override and extraction words written backwards.
var reversedWords = newLitSet("erongi", "snoitcurtsni", "suoiverp", "tpmorp", "dragersid", "tegrof", "metsys")

func reversedHint(t string) bool { return reversedWords.contains(t) }

func reverse(t string) string {
	b := make([]byte, 0, len(t))
	for i := len(t); i > 0; {
		_, n := utf8.DecodeLastRuneInString(t[:i])
		b = append(b, t[i-n:i]...)
		i -= n
	}
	return string(b)
}
