package inspect

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"html"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/unicode/norm"
)

// Hidden is the set of classes of invisible characters that were stripped from a value. Text a
// human reviewer cannot see but a model reads is itself evidence of an attack, so the classes are
// recorded rather than silently dropped.
type Hidden uint8

const (
	// HiddenTag is Unicode tag characters (U+E0000–U+E007F); they can spell ASCII invisibly.
	HiddenTag Hidden = 1 << iota
	// HiddenZeroWidth is zero-width spaces/joiners, word joiners, soft hyphens, BOMs and fillers.
	HiddenZeroWidth
	// HiddenBidi is bidirectional controls (embeddings, overrides, isolates, marks).
	HiddenBidi
	// HiddenVariation is variation selectors; a long run of them can encode bytes.
	HiddenVariation
)

func (h Hidden) String() string {
	var parts []string
	for _, c := range []struct {
		bit  Hidden
		name string
	}{{HiddenTag, "tag"}, {HiddenZeroWidth, "zero-width"}, {HiddenBidi, "bidi"}, {HiddenVariation, "variation-selector"}} {
		if h&c.bit != 0 {
			parts = append(parts, c.name)
		}
	}
	return strings.Join(parts, ",")
}

// Layer names the decoding that produced one of Value.Decoded.
type Layer uint8

const (
	LayerURL       Layer = iota + 1 // percent-encoding (%XX, %uXXXX), incl. overlong UTF-8 repair
	LayerHTML                       // HTML character references
	LayerEscape                     // backslash escapes: \uXXXX, \xXX
	LayerBase64                     // a base64 blob that decodes to mostly printable text
	LayerHex                        // a hex blob that decodes to mostly printable text
	LayerTags                       // ASCII smuggled in Unicode tag characters
	LayerVariation                  // bytes smuggled in variation selectors
)

var layerNames = [...]string{"", "url", "html", "escape", "base64", "hex", "tags", "variation"}

func (l Layer) String() string {
	if int(l) < len(layerNames) {
		return layerNames[l]
	}
	return "layer?"
}

// Limits bound the decoding work done for one value. The engine derives them from Config.
type Limits struct {
	MaxLayers       int // decoded readings kept per value
	MaxDecodedBytes int // total bytes of decoded readings per value
	MaxDecodeDepth  int // how many decodings may be stacked (base64 of percent-encoding of ...)
	MinBlob         int // shortest base64/hex run worth decoding
}

// DefaultLimits are the limits NewValue uses.
var DefaultLimits = Limits{MaxLayers: 8, MaxDecodedBytes: 64 << 10, MaxDecodeDepth: 3, MinBlob: 16}

// NewValue builds the shared, normalised view of one string with DefaultLimits. Every detector
// reads Norm and Decoded instead of decoding on its own.
func NewValue(path, key, raw string) Value {
	var v Value
	normalizeValue(&v, path, key, raw, &DefaultLimits)
	return v
}

// normalizeValue fills v in place (so the engine can reuse Value slots) and reports whether a
// decoding limit was reached.
func normalizeValue(v *Value, path, key, raw string, lim *Limits) (capped bool) {
	return normalizeValueIn(v, path, key, raw, lim, nil)
}

// normalizeValueIn is normalizeValue taking the lower-cased Norm of an ASCII value from arena
// (nil: its own allocation).
func normalizeValueIn(v *Value, path, key, raw string, lim *Limits, arena *byteArena) (capped bool) {
	decoded := v.Decoded[:0]
	from := v.DecodedFrom[:0]
	*v = Value{Path: path, Key: key, Raw: raw}
	var n normResult
	// One scan of raw serves normalisation, the decoder (which layers to try) and the detectors
	// (Value.chars: which bytes occur at all).
	f := scan(raw, lim.MinBlob)
	if !f.nonASCII && f.upper {
		n.ascii, n.text = true, asciiLowerIn(raw, arena)
	} else {
		normalizeScanned(raw, f, &n)
	}
	v.chars = f.chars
	v.Norm, v.Hidden, v.HiddenCount, v.Homoglyphs = n.text, n.hidden, n.hiddenCount, n.homoglyphs
	v.foldEq = foldDiffer
	// For ASCII, Norm is Raw lower-cased: it folds to Raw whenever it is not Raw itself.
	if v.Norm != v.Raw && (n.ascii || strings.EqualFold(v.Norm, v.Raw)) {
		v.foldEq = foldSame
	}
	d := decoder{lim: lim, out: decoded, from: from, seen: v.Norm}
	if n.tags != "" {
		d.add(n.tags, LayerTags, 0)
	}
	if n.varsel != "" {
		d.add(n.varsel, LayerVariation, 0)
	}
	d.expandScanned(raw, f, 0)
	v.Decoded, v.DecodedFrom = d.out, d.from
	return d.capped
}

type normResult struct {
	text        string
	ascii       bool   // s was ASCII: text is s lower-cased, so it folds to s exactly when it differs
	tags        string // ASCII spelled with tag characters
	varsel      string // bytes spelled with variation selectors, when printable
	hidden      Hidden
	hiddenCount int
	homoglyphs  int
}

// scanFlags is what one pass over a string learns about which slower steps it needs.
type scanFlags struct {
	nonASCII, upper, percent, amp, backslash, blob bool
	chars                                          charSet // every class of byte in the string
}

// scan computes the flags of s; blob detection (a run of minBlob or more base64 characters that
// mixes character classes) looks at about len(s)/minBlob bytes of prose.
func scan(s string, minBlob int) scanFlags {
	acc := charsOf(s)
	f := scanFlags{nonASCII: acc&charNonASCII != 0, upper: acc&charUpper != 0, percent: acc.has('%'),
		amp: acc.has('&'), backslash: acc.has('\\'), chars: acc}
	if minBlob < len(s) {
		f.blob = hasBlob(s, minBlob)
	}
	return f
}

// hasBlob reports a run of at least l base64 characters mixing two or more of upper case, lower
// case and digits. It tries windows of l bytes from their end backwards, so a byte that is not
// base64 near a window's end (the space after a word of prose) moves the next window past it
// without reading the bytes before: most of a text is never read.
func hasBlob(s string, l int) bool {
	// Invariant: i is 0 or follows a byte that is not base64, and no run of l or more starts
	// before i unless it was already judged.
	for i := 0; i+l <= len(s); {
		k := i + l - 1
		for k >= i && b64Chars[s[k]] {
			k--
		}
		if k >= i {
			i = k + 1 // a run starting at or before k would hold s[k]
			continue
		}
		end := i + l
		for end < len(s) && b64Chars[s[end]] {
			end++
		}
		if mixedClasses(s[i:end]) {
			return true
		}
		i = end + 1
	}
	return false
}

func mixedClasses(run string) bool {
	classes := 0
	for i := 0; i < len(run); i++ {
		switch c := run[i]; {
		case c >= 'A' && c <= 'Z':
			classes |= 1
		case c >= 'a' && c <= 'z':
			classes |= 2
		case c >= '0' && c <= '9':
			classes |= 4
		}
	}
	return classes == 7 || classes == 3 || classes == 5 || classes == 6
}

func isB64Char(c byte) bool { return b64Chars[c] }

// b64Chars is the set isB64Char tests, as a table.
var b64Chars = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_'
	}
	return t
}()

// hiddenClass classifies a rune that is invisible when rendered (0 for visible runes).
func hiddenClass(r rune) Hidden {
	switch {
	case r < 0xAD:
		return 0
	case r >= 0xE0000 && r <= 0xE007F:
		return HiddenTag
	case r >= 0xFE00 && r <= 0xFE0F, r >= 0xE0100 && r <= 0xE01EF:
		return HiddenVariation
	case r == 0x200E || r == 0x200F || r == 0x061C || r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069:
		return HiddenBidi
	case r == 0xAD || r == 0x034F || r == 0x180E || r >= 0x200B && r <= 0x200D || r >= 0x2060 && r <= 0x2064 ||
		r == 0xFEFF || r == 0x115F || r == 0x1160 || r == 0x3164 || r == 0xFFA0:
		return HiddenZeroWidth
	}
	return 0
}

// normalizeText computes Norm: hidden characters stripped (and recorded), NFKC, lower case,
// confusables folded to ASCII inside Latin text.
func normalizeText(s string, out *normResult) {
	normalizeScanned(s, scan(s, 1<<30), out)
}

// normalizeScanned is normalizeText given scan's flags of s.
func normalizeScanned(s string, f scanFlags, out *normResult) {
	if !f.nonASCII {
		out.ascii = true
		if f.upper {
			out.text = asciiLower(s)
		} else {
			out.text = s
		}
		return
	}
	// Strip hidden runes, collecting smuggled tag ASCII and variation-selector bytes.
	var vis, tags strings.Builder
	var vs []byte
	vis.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		h := hiddenClass(r)
		if h == 0 {
			vis.WriteRune(r)
			continue
		}
		out.hidden |= h
		out.hiddenCount++
		switch h {
		case HiddenTag:
			if r >= 0xE0020 && r <= 0xE007E {
				tags.WriteByte(byte(r - 0xE0000))
			}
		case HiddenVariation:
			if r <= 0xFE0F {
				vs = append(vs, byte(r-0xFE00))
			} else {
				vs = append(vs, byte(r-0xE0100+16))
			}
		}
	}
	if tags.Len() > 0 {
		out.tags = tags.String()
	}
	if len(vs) >= 4 && mostlyPrintable(vs) {
		out.varsel = string(vs)
	}
	t := norm.NFKC.String(vis.String())
	out.text, out.homoglyphs = foldText(t)
}

// asciiLower lower-cases an ASCII string with one allocation and one pass (strings.ToLower
// would scan s again to learn what normalizeText's scan already knows). The buffer is never
// written after the conversion, which is what makes unsafe.String sound here.
func asciiLower(s string) string { return asciiLowerIn(s, nil) }

// asciiLowerIn is asciiLower writing into memory from arena (nil: its own allocation). s must be
// ASCII.
func asciiLowerIn(s string, arena *byteArena) string {
	b := arena.alloc(len(s))
	i := 0
	for ; i+8 <= len(s); i += 8 {
		// Eight bytes at a time: for ASCII bytes, c+0x3f has its high bit set when c >= 'A' and
		// c+0x25 when c > 'Z'; no sum carries into the next byte.
		x := load8(s, i)
		upper := (x + 0x3f*swarOnes) &^ (x + 0x25*swarOnes) & swarHigh
		binary.LittleEndian.PutUint64(b[i:], x|upper>>2)
	}
	for ; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// byteArena hands out pieces of larger allocations, so that the many short strings of one
// inspection (the lower-cased Norm of each value) cost a few allocations instead of one each. A
// piece is handed out once and never written again by the arena; an arena is never reused for
// another inspection, so strings cut from it (which findings may keep) stay valid.
type byteArena struct {
	buf   []byte
	chunk int // size of the next allocation
}

// alloc returns n bytes; a nil arena allocates them on their own.
func (a *byteArena) alloc(n int) []byte {
	if a == nil || n > a.chunk/4 {
		return make([]byte, n)
	}
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, a.chunk)
	}
	l := len(a.buf)
	a.buf = a.buf[:l+n]
	return a.buf[l : l+n : l+n]
}

// confusables maps lower-case letters of other scripts that render like a Latin letter to that
// letter. Upper-case forms are covered because text is lower-cased first; fullwidth and
// mathematical letters are already folded by NFKC.
var confusables = map[rune]byte{
	// Cyrillic
	'а': 'a', 'в': 'b', 'е': 'e', 'ё': 'e', 'і': 'i', 'ї': 'i', 'ј': 'j', 'к': 'k', 'м': 'm', 'н': 'h',
	'о': 'o', 'р': 'p', 'с': 'c', 'т': 't', 'у': 'y', 'х': 'x', 'ѕ': 's', 'һ': 'h', 'ԁ': 'd', 'ԛ': 'q',
	'ԝ': 'w', 'ӏ': 'l', 'ь': 'b', 'ү': 'y', 'ɡ': 'g', 'ԍ': 'g', 'п': 'n', 'г': 'r',
	// Greek
	'α': 'a', 'β': 'b', 'γ': 'y', 'ε': 'e', 'η': 'n', 'ι': 'i', 'κ': 'k', 'ν': 'v', 'ο': 'o', 'ρ': 'p',
	'τ': 't', 'υ': 'u', 'χ': 'x', 'ω': 'w', 'ϲ': 'c', 'ϳ': 'j', 'μ': 'u', 'ς': 'c', 'ƶ': 'z',
	// Latin lookalikes outside ASCII, Armenian, Cherokee-free
	'ı': 'i', 'ɑ': 'a', 'ǀ': 'l', 'ɩ': 'i', 'ɪ': 'i', 'ʏ': 'y', 'ᴀ': 'a', 'ᴄ': 'c', 'ᴅ': 'd', 'ᴇ': 'e',
	'ᴋ': 'k', 'ᴍ': 'm', 'ᴏ': 'o', 'ᴘ': 'p', 'ᴛ': 't', 'ᴜ': 'u', 'ᴠ': 'v', 'ᴡ': 'w', 'ᴢ': 'z', 'ʀ': 'r',
	'ɴ': 'n', 'ʜ': 'h', 'ʟ': 'l', 'ɢ': 'g', 'ꜱ': 's', 'օ': 'o', 'ս': 'u', 'հ': 'h', 'ո': 'n', 'ց': 'g',
}

// nativeLatin reports whether r, a confusable, is a letter of a living Latin orthography: the
// dotless ı of Turkish and Azerbaijani, the ɑ and ɩ of West African alphabets, the ǀ click of
// Khoisan languages. It is folded for matching (so "ıgnore" still reads "ignore") but not counted
// as a homoglyph: genuine Turkish text has one in most sentences.
func nativeLatin(r rune) bool { return r == 'ı' || r == 'ɑ' || r == 'ɩ' || r == 'ǀ' }

// foldText lower-cases t and folds confusable letters to ASCII. Folding applies to a word that
// already mixes Latin letters with lookalikes, or to any word when the text is mostly Latin, so
// that genuine Russian or Greek text keeps its own letters (and its own injection phrases).
func foldText(t string) (string, int) {
	latin, other := 0, 0
	for _, r := range t {
		switch {
		case r < utf8.RuneSelf:
			if r|0x20 >= 'a' && r|0x20 <= 'z' {
				latin++
			}
		case unicode.IsLetter(r):
			other++
		}
	}
	mostlyLatin := latin > other
	var b strings.Builder
	b.Grow(len(t))
	homoglyphs := 0
	for i := 0; i < len(t); {
		r, size := utf8.DecodeRuneInString(t[i:])
		if !unicode.IsLetter(r) {
			b.WriteRune(unicode.ToLower(r))
			i += size
			continue
		}
		// One word: a maximal run of letters (and combining marks).
		j := i
		hasLatin, hasConf, allFoldable := false, false, true
		for j < len(t) {
			r, sz := utf8.DecodeRuneInString(t[j:])
			if !unicode.IsLetter(r) && !unicode.Is(unicode.Mn, r) {
				break
			}
			lr := unicode.ToLower(r)
			switch {
			case lr < utf8.RuneSelf:
				hasLatin = true
			case confusables[lr] != 0:
				hasConf = true
			case unicode.Is(unicode.Mn, r):
			default:
				allFoldable = false
			}
			j += sz
		}
		fold := hasConf && (hasLatin || (mostlyLatin && allFoldable))
		for _, r := range t[i:j] {
			lr := unicode.ToLower(r)
			if fold {
				if c := confusables[lr]; c != 0 {
					b.WriteByte(c)
					if !nativeLatin(lr) {
						homoglyphs++
					}
					continue
				}
			}
			b.WriteRune(lr)
		}
		i = j
	}
	return b.String(), homoglyphs
}

// mostlyPrintable reports whether b is valid UTF-8 text of which at least 90% is printable —
// the test that separates an encoded message from an encoded key, hash or image.
func mostlyPrintable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	total, ok := 0, 0
	for _, r := range string(b) {
		total++
		if r == '\n' || r == '\r' || r == '\t' || unicode.IsPrint(r) {
			ok++
		}
	}
	return total > 0 && ok*10 >= total*9
}

// decoder collects the decoded readings of one value within its limits.
type decoder struct {
	lim    *Limits
	out    []string
	from   []Layer
	seen   string // the value's Norm: a reading equal to it adds nothing
	bytes  int
	capped bool
}

// add normalises one decoded reading and keeps it if it is new; it returns the normalised text.
func (d *decoder) add(text string, l Layer, depth int) {
	if len(d.out) >= d.lim.MaxLayers || d.bytes+len(text) > d.lim.MaxDecodedBytes {
		d.capped = true
		return
	}
	var n normResult
	normalizeText(strings.ToValidUTF8(text, "\uFFFD"), &n)
	if n.text == d.seen {
		return
	}
	for _, o := range d.out {
		if o == n.text {
			return
		}
	}
	d.bytes += len(n.text)
	d.out = append(d.out, n.text)
	d.from = append(d.from, l)
	if n.tags != "" {
		d.add(n.tags, LayerTags, depth+1)
	}
	// Decode further from the un-normalised text: case matters to base64.
	d.expand(text, depth+1)
}

// expand tries each decoding on s and adds what it yields.
func (d *decoder) expand(s string, depth int) {
	if depth >= d.lim.MaxDecodeDepth {
		return
	}
	d.expandScanned(s, scan(s, d.lim.MinBlob), depth)
}

// expandScanned is expand given scan's flags of s (computed with d.lim.MinBlob).
func (d *decoder) expandScanned(s string, f scanFlags, depth int) {
	if depth >= d.lim.MaxDecodeDepth {
		return
	}
	if f.percent {
		if u, ok := percentDecode(s); ok {
			d.add(u, LayerURL, depth)
		}
	}
	if f.amp {
		if u := html.UnescapeString(s); u != s {
			d.add(u, LayerHTML, depth)
		}
	}
	if f.backslash {
		if u, ok := unescapeBackslash(s); ok {
			d.add(u, LayerEscape, depth)
		}
	}
	if f.blob {
		d.blobs(s, depth)
	}
}

// blobs decodes base64 and hex runs inside s (at most a few per value).
func (d *decoder) blobs(s string, depth int) {
	found := 0
	for i := 0; i < len(s) && found < 4; {
		if !isB64Char(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isB64Char(s[j]) {
			j++
		}
		k := j
		for k < len(s) && k-j < 2 && s[k] == '=' {
			k++
		}
		run := s[i:j]
		if len(run) >= d.lim.MinBlob {
			if txt, l, ok := decodeBlob(run, s[j:k]); ok {
				found++
				d.add(txt, l, depth)
			}
		}
		i = k
		if k == j {
			i = j
		}
	}
}

func decodeBlob(run, pad string) (string, Layer, bool) {
	if isHexString(run) && len(run)%2 == 0 {
		if b, err := hex.DecodeString(run); err == nil && len(b) >= 6 && mostlyPrintable(b) {
			return string(b), LayerHex, true
		}
		// A hex run is also valid base64; try that too (rarely meaningful).
	}
	if len(run) > 2 && (run[0] == '0' && (run[1] == 'x' || run[1] == 'X')) && isHexString(run[2:]) && len(run)%2 == 0 {
		if b, err := hex.DecodeString(run[2:]); err == nil && len(b) >= 6 && mostlyPrintable(b) {
			return string(b), LayerHex, true
		}
	}
	enc := base64.StdEncoding
	if cs12.in(run) {
		if cs13.in(run) {
			return "", 0, false
		}
		enc = base64.URLEncoding
	}
	full := run + pad
	if len(full)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
		full = run
		if len(full)%4 == 1 {
			full = full[:len(full)-1]
		}
	}
	b, err := enc.DecodeString(full)
	if err != nil || len(b) < 6 || !mostlyPrintable(b) {
		return "", 0, false
	}
	return string(b), LayerBase64, true
}

func isHexString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return len(s) > 0
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// percentDecode decodes %XX and IIS-style %uXXXX sequences, leaving malformed ones as they are,
// then repairs overlong UTF-8 (%c0%ae is '.') so that traversal hidden that way is seen.
func percentDecode(s string) (string, bool) {
	b := make([]byte, 0, len(s))
	changed := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+6 <= len(s) && (s[i+1] == 'u' || s[i+1] == 'U') {
				if r, ok := hex4(s[i+2 : i+6]); ok {
					b = utf8.AppendRune(b, r)
					i += 5
					changed = true
					continue
				}
			}
			if i+3 <= len(s) {
				h, ok1 := hexDigit(s[i+1])
				l, ok2 := hexDigit(s[i+2])
				if ok1 && ok2 {
					b = append(b, h<<4|l)
					i += 2
					changed = true
					continue
				}
			}
		}
		b = append(b, c)
	}
	if !changed {
		return s, false
	}
	return string(fixOverlong(b)), true
}

func hex4(s string) (rune, bool) {
	var r rune
	for i := 0; i < 4; i++ {
		h, ok := hexDigit(s[i])
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(h)
	}
	return r, true
}

// fixOverlong rewrites overlong 2- and 3-byte UTF-8 encodings of ASCII (and other code points) to
// their shortest form; Go's decoder would otherwise turn them into U+FFFD and hide the '.' or '/'.
func fixOverlong(b []byte) []byte {
	out := b[:0]
	for i := 0; i < len(b); i++ {
		c := b[i]
		if (c == 0xC0 || c == 0xC1) && i+1 < len(b) && b[i+1]&0xC0 == 0x80 {
			out = append(out, (c&0x1F)<<6|b[i+1]&0x3F)
			i++
			continue
		}
		if c == 0xE0 && i+2 < len(b) && b[i+1]&0xC0 == 0x80 && b[i+1] < 0xA0 && b[i+2]&0xC0 == 0x80 {
			r := rune(c&0x0F)<<12 | rune(b[i+1]&0x3F)<<6 | rune(b[i+2]&0x3F)
			out = utf8.AppendRune(out, r)
			i += 2
			continue
		}
		out = append(out, c)
	}
	return out
}

// unescapeBackslash decodes \uXXXX, \xXX and the common single-character escapes in text that
// carries them literally (a JSON string escaped twice, a JavaScript or Python literal).
func unescapeBackslash(s string) (string, bool) {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch n := s[i+1]; n {
		case 'u', 'U':
			if i+5 < len(s) {
				if r, ok := hex4(s[i+2 : i+6]); ok {
					b.WriteRune(r)
					i += 5
					changed = true
					continue
				}
			}
		case 'x', 'X':
			if i+3 < len(s) {
				h, ok1 := hexDigit(s[i+2])
				l, ok2 := hexDigit(s[i+3])
				if ok1 && ok2 {
					b.WriteByte(h<<4 | l)
					i += 3
					changed = true
					continue
				}
			}
		case 'n':
			b.WriteByte('\n')
			i++
			changed = true
			continue
		case 't':
			b.WriteByte('\t')
			i++
			changed = true
			continue
		case '\\', '"', '\'', '/':
			b.WriteByte(n)
			i++
			changed = true
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), changed
}
