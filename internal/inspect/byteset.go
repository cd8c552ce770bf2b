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
	cs7  = newByteSet("$'\"|;")
	cs8  = newByteSet(" -/()+")
	cs9  = newByteSet("()+./")
	cs10 = newByteSet("()+/")
	cs11 = newByteSet(" ()+")
	cs12 = newByteSet("-_")
	cs13 = newByteSet("+/")
	cs15 = newByteSet("'\"`();#")
	cs16 = newByteSet(";|&`$\n\r<() \\{")
	cs17 = newByteSet("{%")
	cs18 = newByteSet("-/\\\"'0123456789;|&`$%~.()\n\r")
	cs19 = newByteSet(" \t\n;|&")
	cs20 = newByteSet("-/\\\"'0123456789$%~")
	cs21 = newByteSet("*?[\\")
	cs22 = newByteSet(" \t\n")
	cs23 = newByteSet("/?#")
	cs24 = newByteSet("|`$=;>")
	cs25 = newByteSet("./\\%:\x00")
	cs26 = newByteSet("%\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09")
	cs27 = newByteSet("/\\")
	cs28 = newByteSet(" \t\r\n")
	cs29 = newByteSet("\x00#")
	cs30 = newByteSet("0123456789")
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
