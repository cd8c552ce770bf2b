package inspect

// Byte sets for the ASCII character classes the detectors test values for, built once at start-up:
// strings.ContainsAny and IndexAny rebuild their set on every call, which dominated short scans.
var (
	cs0  = newByteSet(" \n")
	cs1  = newByteSet("$%{<")
	cs2  = newByteSet("$%{<#")
	cs3  = newByteSet("=:")
	cs4  = newByteSet("$%{<[(#/@")
	cs5  = newByteSet(" :")
	cs6  = newByteSet("()")
	cs8  = newByteSet(" -/()+")
	cs9  = newByteSet("()+./")
	cs10 = newByteSet("()+/")
	cs11 = newByteSet(" ()+")
	cs12 = newByteSet("-_")
	cs13 = newByteSet("+/")
	cs15 = newByteSet("'\"`();#")
	cs18 = newByteSet("-/\\\"'0123456789;|&`$%~.()\n\r")
	cs19 = newByteSet(" \t\n;|&")
	cs20 = newByteSet("-/\\\"'0123456789$%~")
	cs21 = newByteSet("*?[\\")
	cs22 = newByteSet(" \t\n")
	cs23 = newByteSet("/?#")
	cs24 = newByteSet("|`$=;>")
	cs26 = newByteSet("%\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09")
	cs27 = newByteSet("/\\")
	cs28 = newByteSet(" \t\r\n")
	cs29 = newByteSet("\x00#")
)

// firstNonASCII returns the index of the first byte of s at or above 0x80, or -1. It tests eight
// bytes at a time: most inspected text is ASCII and is scanned for this several times.
func firstNonASCII(s string) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		// The compiler merges these loads into one 64-bit load.
		if (uint64(w[0])|uint64(w[1])<<8|uint64(w[2])<<16|uint64(w[3])<<24|
			uint64(w[4])<<32|uint64(w[5])<<40|uint64(w[6])<<48|uint64(w[7])<<56)&0x8080808080808080 != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= 0x80 {
			return i
		}
	}
	return -1
}

// byteSet is a set of ASCII bytes. For an ASCII set, testing bytes is the same as testing runes:
// in UTF-8 an ASCII byte never occurs inside a multi-byte sequence.
// A table rather than a bitmap: one load per byte, no shifts, on the hottest loops of the detectors.
type byteSet [256]bool

func newByteSet(chars string) *byteSet {
	var b byteSet
	for i := 0; i < len(chars); i++ {
		c := chars[i]
		if c >= 0x80 {
			panic("inspect: newByteSet needs ASCII")
		}
		b[c] = true
	}
	return &b
}

func (b *byteSet) has(c byte) bool { return b[c] }

// in reports whether s contains any byte of b (strings.ContainsAny for an ASCII set).
func (b *byteSet) in(s string) bool { return b.index(s) >= 0 }

// index returns the index of the first byte of s in b, or -1 (strings.IndexAny for an ASCII set).
func (b *byteSet) index(s string) int {
	for i := 0; i < len(s); i++ {
		if b.has(s[i]) {
			return i
		}
	}
	return -1
}

// charSet is the set of byte classes occurring in a string: one bit for each ASCII punctuation
// byte, and one each for space, tab, newline, carriage return, other control bytes, digits, lower-
// and upper-case letters and non-ASCII bytes. The engine computes it once per value, in the pass
// normalisation makes anyway (Value.chars), so that a detector can rule a value out — "no
// separator, no quote, no parenthesis: nothing to find" — without scanning it again.
type charSet uint64

const (
	charSpace charSet = 1 << (32 + iota)
	charTab
	charNewline
	charReturn
	charControl
	charDigit
	charLower
	charUpper
	charNonASCII
	// charKnown is set in every computed charSet, so that the zero value means "not computed".
	charKnown
)

// charPunct lists the ASCII punctuation bytes; the i-th has bit i.
const charPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

var charBits = func() (t [256]charSet) {
	for c := 0; c < 0x20; c++ {
		t[c] = charControl
	}
	t[0x7f] = charControl
	t[' '], t['\t'], t['\n'], t['\r'] = charSpace, charTab, charNewline, charReturn
	for i := 0; i < len(charPunct); i++ {
		t[charPunct[i]] = 1 << i
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = charDigit
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = charLower
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = charUpper
	}
	for c := 0x80; c < 0x100; c++ {
		t[c] = charNonASCII
	}
	return t
}()

// charsOf computes the charSet of s.
func charsOf(s string) charSet {
	// Four independent accumulators: one OR chain would make every byte wait for the previous.
	var a0, a1, a2, a3 charSet
	i := 0
	for ; i+4 <= len(s); i += 4 {
		a0 |= charBits[s[i]]
		a1 |= charBits[s[i+1]]
		a2 |= charBits[s[i+2]]
		a3 |= charBits[s[i+3]]
	}
	for ; i < len(s); i++ {
		a0 |= charBits[s[i]]
	}
	return a0 | a1 | a2 | a3 | charKnown
}

// charsIn returns the charSet holding the classes of the bytes of chars.
func charsIn(chars string) charSet {
	var m charSet
	for i := 0; i < len(chars); i++ {
		m |= charBits[chars[i]]
	}
	return m
}

// has reports whether byte c's class is in the set.
func (m charSet) has(c byte) bool { return m&charBits[c] != 0 }

// any reports whether any class of o is in the set.
func (m charSet) any(o charSet) bool { return m&o != 0 }

// Eight bytes at a time ("SWAR"): the loops below test a 64-bit word for a kind of byte with a
// few arithmetic operations instead of eight comparisons. hasLess is exact for the "any byte"
// question: a borrow can only start at a byte below n, which is then reported itself.
const (
	swarOnes = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// load8 reads s[i:i+8] as a little-endian word; the compiler merges the loads into one.
func load8(s string, i int) uint64 {
	w := s[i : i+8]
	return uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
		uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
}

// hasLess reports whether any byte of x is below n (n ≤ 128).
func hasLess(x uint64, n byte) bool { return (x-swarOnes*uint64(n))&^x&swarHigh != 0 }

// hasByte reports whether any byte of x equals c.
func hasByte(x uint64, c byte) bool { return hasLess(x^(swarOnes*uint64(c)), 1) }

// hasDigit reports whether any byte of x is an ASCII digit: XOR with '0' maps exactly the digits
// onto 0–9.
func hasDigit(x uint64) bool { return hasLess(x^(swarOnes*'0'), 10) }

// nextDigit returns the index of the first ASCII digit of s at or after i, or len(s).
func nextDigit(s string, i int) int {
	for ; i+8 <= len(s); i += 8 {
		if hasDigit(load8(s, i)) {
			break
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			return i
		}
	}
	return len(s)
}
