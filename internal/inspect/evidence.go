package inspect

import (
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// maxEvidence bounds an attack excerpt. Attack text is not confidential, but a finding is logged and
// signed into the ledger, so it stays short.
const maxEvidence = 64

// excerpt returns at most maxEvidence runes of s around byte offset at, with control characters
// escaped, so an operator sees what matched. It is used for attack payloads, never for secrets or PII.
func excerpt(s string, at int) string {
	if at < 0 || at > len(s) {
		at = 0
	}
	start := at - maxEvidence/4
	if start < 0 {
		start = 0
	}
	// Align to rune starts, looking back at most utf8.UTFMax bytes (invalid UTF-8 has no
	// boundaries to find; QuoteToASCII escapes it either way).
	for k := 0; k < utf8.UTFMax && start > 0 && !utf8.RuneStart(s[start]); k++ {
		start--
	}
	end := min(start+maxEvidence, len(s))
	for k := 0; k < utf8.UTFMax && end > start && end < len(s) && !utf8.RuneStart(s[end]); k++ {
		end--
	}
	q := strconv.QuoteToASCII(s[start:end])
	q = q[1 : len(q)-1]
	if start > 0 {
		q = "…" + q
	}
	if end < len(s) {
		q += "…"
	}
	return q
}

// redact describes a secret or a personal datum without revealing it: its first and last two
// characters and its length ("AK…LE (20 chars)"). Values shorter than 8 characters show only the
// length, because two plus two characters of a short value reveal too much of it.
func redact(s string) string {
	n := utf8.RuneCountInString(s)
	if n < 8 {
		return "(" + strconv.Itoa(n) + " chars)"
	}
	r := []rune(s)
	return printable(r[:2]) + "…" + printable(r[n-2:]) + " (" + strconv.Itoa(n) + " chars)"
}

// printable replaces anything but printable ASCII with '?', so evidence never carries control bytes.
func printable(r []rune) string {
	b := make([]byte, len(r))
	for i, c := range r {
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b[i] = byte(c)
	}
	return string(b)
}

// foldedReadings is readings for detectors that ignore case: when Norm is just Raw lower-cased,
// Raw is skipped (Norm says the same and needs no further lower-casing).
func foldedReadings(v *Value, fn func(s string) bool) {
	if v.Norm == "" || len(v.Norm) != len(v.Raw) || !v.normFoldsRaw() {
		readings(v, fn)
		return
	}
	raw := v.Raw
	readings(v, func(s string) bool {
		if len(s) == len(raw) && s == raw {
			return true
		}
		return fn(s)
	})
}

// maxReadings bounds how many readings of one value a detector looks at.
const maxReadings = 8

// readings calls fn with each distinct reading of v — Raw, Norm and every Decoded layer — until fn
// returns false. When the engine supplied no decoded layer but Raw carries percent-escapes, one
// tolerant URL-decoding is added, so a detector never depends on the engine to see %27 as a quote.
func readings(v *Value, fn func(s string) bool) {
	var seen [maxReadings]string
	n := 0
	try := func(s string) bool {
		if s == "" {
			return true
		}
		for _, p := range seen[:n] {
			if p == s {
				return true
			}
		}
		if n == len(seen) {
			return false
		}
		seen[n] = s
		n++
		return fn(s)
	}
	if !try(v.Raw) {
		return
	}
	if v.foldEq == foldSame && v.Norm != "" {
		// Norm is Raw lower-cased and differs from it: no need to compare them again.
		seen[n] = v.Norm
		n++
		if !fn(v.Norm) {
			return
		}
	} else if !try(v.Norm) {
		return
	}
	for _, d := range v.Decoded {
		if !try(d) {
			return
		}
	}
	if len(v.Decoded) == 0 && (v.chars == 0 || v.chars.has('%')) && strings.IndexByte(v.Raw, '%') >= 0 {
		if d, err := url.PathUnescape(v.Raw); err == nil {
			try(d)
		}
	}
}

// lowerASCII lower-cases ASCII letters only, so that byte offsets in the result are offsets in s
// (strings.ToLower re-encodes invalid UTF-8 and changes lengths).
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			// b is not written after this: sharing it saves the second copy string(b) would make.
			return unsafe.String(unsafe.SliceData(b), len(b))
		}
	}
	return s
}
