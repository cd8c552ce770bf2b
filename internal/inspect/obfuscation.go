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
	// An instruction is words: every reading needs spaces, which one fast count rules in or out.
	spaces := strings.Count(t, " ")
	if spaces < 2 {
		return
	}
	if spaces >= 7 && hasSpacedRun(t) {
		if s, ok := unspace(t); ok {
			fn("spaced letters", s)
		}
	}
	if v.readingChars(t).any(digitChars) && hasLeetWord(t) {
		if s, ok := unleet(t); ok {
			fn("leetspeak", s)
		}
	}
	if rot13Hint(t) {
		fn("rot13", rot13(t))
	}
	if reversedHint(t) {
		fn("reversed", reverse(t))
	}
}

var digitChars = charsIn("0123456789")

// minSpacedLetters is the shortest run of single letters unspace joins into words.
const minSpacedLetters = 8

// spacedByte reports t[k] a space or a single letter between spaces: a byte of spaced-out text.
func spacedByte(t string, k int) bool {
	c := t[k]
	return c == ' ' || isASCIILetter(rune(c)) && (k == 0 || t[k-1] == ' ') && (k+1 == len(t) || t[k+1] == ' ')
}

// hasSpacedRun reports a stretch of spaced-out text holding minSpacedLetters single letters (what
// unspace needs). Such a stretch spans at least 2·minSpacedLetters-1 bytes, so probing one byte
// in every that many finds it: ordinary prose costs a few probes, not a pass.
func hasSpacedRun(t string) bool {
	const span = 2*minSpacedLetters - 1
	for j := span - 1; j < len(t); j += span {
		if !spacedByte(t, j) {
			continue
		}
		start, end := j, j+1
		for start > 0 && spacedByte(t, start-1) {
			start--
		}
		for end < len(t) && spacedByte(t, end) {
			end++
		}
		letters := 0
		for k := start; k < end; k++ {
			if t[k] != ' ' {
				letters++
			}
		}
		if letters >= minSpacedLetters {
			return true
		}
		j = end - 1 // the next probe lies a span past this stretch
	}
	return false
}

// hasLeetWord reports a word unleet would rewrite: a run of at least three leetClass bytes with a
// letter and a digit. It looks only around digits, which prose has few of.
func hasLeetWord(t string) bool {
	for i := nextDigit(t, 0); i < len(t); i = nextDigit(t, i+1) {
		if leetClass[t[i]] != 2 {
			continue
		}
		start, end := i, i+1
		for start > 0 && leetClass[t[start-1]] != 0 {
			start--
		}
		for end < len(t) && leetClass[t[end]] != 0 {
			end++
		}
		if end-start >= 3 {
			for k := start; k < end; k++ {
				if leetClass[t[k]] == 1 {
					return true
				}
			}
		}
		i = end
	}
	return false
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
	if singles < minSpacedLetters {
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

// leetClass classifies bytes for unleet: 1 a letter, 2 a digit that stands for a letter, 3 a
// symbol that does, 0 anything else.
var leetClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-32] = 1, 1
	}
	for c := range leet {
		if leet[c] != 0 {
			t[c] = 3
			if c >= '0' && c <= '9' {
				t[c] = 2
			}
		}
	}
	return t
}()

// unleet rewrites words that mix letters with leetspeak digits ("1gn0r3 411 pr3v10u5"); it
// reports false, without allocating, when no word does.
func unleet(t string) (string, bool) {
	var b []byte
	for i := 0; i < len(t); {
		if leetClass[t[i]] == 0 {
			i++
			continue
		}
		j := i
		var seen uint8 // bit 1: a letter, bit 2: a digit
		for j < len(t) {
			c := leetClass[t[j]]
			if c == 0 {
				break
			}
			seen |= 1 << (c - 1) & 3 // symbols (3) set neither: they count only beside a digit
			j++
		}
		if seen == 3 && j-i >= 3 {
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

// rot13Hint reports ROT13 of "ignore" or "instruction" in t. Both start with 'v', rare in prose,
// so one byte search (vectorised) finds every place either could start.
func rot13Hint(t string) bool {
	return hasLitAt(t, 'v', 0, "vtaber") || hasLitAt(t, 'v', 0, "vafgehpgvba")
}

// hasLitAt reports lit in t, looking only where rare, lit's byte at offset off, occurs: a search
// for one uncommon byte skips most of a text at vector speed, where a substring search would
// stop at every common first letter.
func hasLitAt(t string, rare byte, off int, lit string) bool {
	for i := 0; i < len(t); {
		j := strings.IndexByte(t[i:], rare)
		if j < 0 {
			return false
		}
		i += j
		if i >= off && strings.HasPrefix(t[i-off:], lit) {
			return true
		}
		i++
	}
	return false
}

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

// reversedHint reports "ignore" or "instruction" written backwards in t ("erongi", found from
// its 'g'; "noitcurtsni", from its 'u').
func reversedHint(t string) bool {
	return hasLitAt(t, 'g', 4, "erongi") || hasLitAt(t, 'u', 5, "noitcurtsni")
}

func reverse(t string) string {
	b := make([]byte, 0, len(t))
	for i := len(t); i > 0; {
		_, n := utf8.DecodeLastRuneInString(t[:i])
		b = append(b, t[i-n:i]...)
		i -= n
	}
	return string(b)
}
