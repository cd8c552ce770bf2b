package jsonx

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// What Validate refuses. Each is wrapped with detail (a byte offset or a JSON path); match them
// with errors.Is.
var (
	// ErrSyntax: the text is not one JSON value (RFC 8259).
	ErrSyntax = errors.New("invalid JSON")
	// ErrDuplicateKey: an object names the same member twice, exactly or up to case. Returned
	// as a *DuplicateKeyError naming the path.
	ErrDuplicateKey = errors.New("duplicate object key")
	// ErrInvalidUTF8: a string holds bytes that are not UTF-8, or a \u escape of a lone
	// surrogate (which is not a character either).
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
	// ErrTooLarge: the text is longer than Limits.MaxBytes.
	ErrTooLarge = errors.New("JSON text too large")
)

// Limits bound what Validate accepts. A zero field takes the default: MaxNesting deep, any size.
type Limits struct {
	MaxDepth int
	MaxBytes int
	// KeysDepth, when positive, looks for duplicate keys only in objects nested at most this
	// deep (1: the outermost object). For an envelope whose deeper values are each validated on
	// their own (the calls of a batch), so that one bad value is refused alone.
	KeysDepth int
}

// DuplicateKeyError names an object member whose key repeats an earlier key of the same object.
type DuplicateKeyError struct {
	// Path is the JSON path of the repeated member as written the second time ($.params.limit).
	Path string
	// Key is that second spelling; First is the earlier one (equal unless they differ by case).
	Key, First string
}

func (e *DuplicateKeyError) Error() string {
	if e.Key == e.First {
		return fmt.Sprintf("duplicate key at %s", e.Path)
	}
	return fmt.Sprintf("duplicate key at %s: %q differs from %q only by case", e.Path, e.Key, e.First)
}

// Is makes errors.Is(err, ErrDuplicateKey) hold.
func (e *DuplicateKeyError) Is(target error) bool { return target == ErrDuplicateKey }

// Validate checks that b is exactly one JSON value that every reader reads the same way: well
// formed (RFC 8259), valid UTF-8 with no lone surrogate escapes, within lim, and with no object
// that names a member twice — neither exactly (parsers disagree on which of two duplicates
// counts: Go takes the last, many take the first) nor up to case (Go's encoding/json and
// other case-insensitive readers match "LIMIT" to a field named "limit"). Keys are compared
// after their escapes are decoded, so "\u0061" repeats "a". Case is compared with Unicode
// simple folding, as strings.EqualFold does.
//
// It is the one definition of well-formed input on the decision path: request bodies, and
// the arguments of a tool call on every transport, pass it before anything reads them.
func Validate(b []byte, lim Limits) error {
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = MaxNesting
	}
	if lim.MaxBytes > 0 && len(b) > lim.MaxBytes {
		return fmt.Errorf("%w: %d bytes; the limit is %d", ErrTooLarge, len(b), lim.MaxBytes)
	}
	var keys [16]seenKey
	var stack [8]frame
	v := validator{b: b, maxDepth: lim.MaxDepth, keysDepth: lim.KeysDepth, keys: keys[:0], stack: stack[:0]}
	return v.document()
}

// document reads the whole input as one value, with nothing but whitespace around it.
func (v *validator) document() error {
	v.ws()
	if err := v.value(); err != nil {
		return err
	}
	v.ws()
	if v.i != len(v.b) {
		return v.syntax("data after the value")
	}
	return nil
}

// ValidateObject is Validate for a tool call's arguments: one JSON object. Empty input (no
// arguments at all) is accepted; callers treat it as {}.
func ValidateObject(b []byte, lim Limits) error {
	t := trimSpace(b)
	if len(t) == 0 {
		return nil
	}
	if err := objectFirst(t); err != nil {
		return err
	}
	return Validate(b, lim)
}

// objectFirst refuses a value that is not an object by its first byte (t is trimmed, not empty).
func objectFirst(t []byte) error {
	if t[0] != '{' {
		got := "a number"
		switch t[0] {
		case '[':
			got = "an array"
		case '"':
			got = "a string"
		case 't', 'f':
			got = "a boolean"
		case 'n':
			got = "null"
		}
		return fmt.Errorf("%w: want a JSON object, got %s", ErrSyntax, got)
	}
	return nil
}

// validator is a recursive-descent checker. Checking only, it decodes nothing but keys, and
// those only when they are escaped or not plain lower-case ASCII; building (DecodeObject), it
// also leaves each value it read in val, in encoding/json's Go form with numbers as
// json.Number — one pass that refuses what Validate refuses and yields the value.
type validator struct {
	b []byte
	// src, when building, is b copied once into a string: the strings, keys and numbers built
	// without escapes are slices of it rather than one allocation each (most of a document's
	// allocations). They keep src alive as long as any of them is.
	src       string
	i         int
	depth     int
	maxDepth  int
	keysDepth int // see Limits.KeysDepth
	build     bool
	val       any
	// keys holds the keys of every object being read, innermost last; each object remembers
	// where its own start.
	keys []seenKey
	// stack is the path to the value being read, for error messages only.
	stack []frame
	// fields, when not nil (DecodeFields, ObjectKeys), receives the outermost object's members
	// in order instead of a map.
	fields *[]Field
}

// seenKey is a key as folded for comparison, and as written for messages.
type seenKey struct{ folded, key string }

// frame is one step of the path: an object member (key, the raw spelling) or an array element.
type frame struct {
	key   string
	index int
	isKey bool
}

func (v *validator) syntax(what string) error {
	return fmt.Errorf("%w: offset %d: %s", ErrSyntax, v.i, what)
}

func (v *validator) ws() {
	for v.i < len(v.b) {
		switch v.b[v.i] {
		case ' ', '\t', '\n', '\r':
			v.i++
		default:
			return
		}
	}
}

func (v *validator) value() error {
	if v.i >= len(v.b) {
		return v.syntax("unexpected end of input")
	}
	switch c := v.b[v.i]; {
	case c == '{':
		return v.object()
	case c == '[':
		return v.array()
	case c == '"':
		s, err := v.str(v.build)
		v.val = s
		return err
	case c == 't':
		v.val = true
		return v.literal("true")
	case c == 'f':
		v.val = false
		return v.literal("false")
	case c == 'n':
		v.val = nil
		return v.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return v.number()
	default:
		return v.syntax(fmt.Sprintf("unexpected character %q", c))
	}
}

func (v *validator) enter() error {
	if v.depth++; v.depth > v.maxDepth {
		return fmt.Errorf("%w: deeper than %d", ErrTooDeep, v.maxDepth)
	}
	return nil
}

// smallObject is the number of members up to which duplicates are found by a linear scan;
// larger objects use a map (built once they grow past it).
const smallObject = 16

func (v *validator) object() error {
	if err := v.enter(); err != nil {
		return err
	}
	v.i++ // '{'
	start := len(v.keys)
	var seen map[string]string // folded → first spelling, for large objects only
	defer func() { v.keys = v.keys[:start] }()
	var m map[string]any
	top := v.fields != nil && v.depth == 1 // DecodeFields' outermost object: members, not a map
	if v.build && !top {
		m = map[string]any{}
	}
	v.ws()
	if v.i < len(v.b) && v.b[v.i] == '}' {
		v.i++
		v.depth--
		v.val = m
		return nil
	}
	for {
		v.ws()
		if v.i >= len(v.b) || v.b[v.i] != '"' {
			return v.syntax("want an object key")
		}
		key, err := v.str(true)
		if err != nil {
			return err
		}
		if v.keysDepth <= 0 || v.depth <= v.keysDepth {
			folded := fold(key)
			first, dup := "", false
			if seen != nil {
				first, dup = seen[folded]
			} else {
				for _, k := range v.keys[start:] {
					if k.folded == folded {
						first, dup = k.key, true
						break
					}
				}
			}
			if dup {
				return &DuplicateKeyError{Path: v.path(key), Key: key, First: first}
			}
			switch {
			case seen != nil:
				seen[folded] = key
			case len(v.keys)-start < smallObject:
				v.keys = append(v.keys, seenKey{folded: folded, key: key})
			default:
				seen = make(map[string]string, 4*smallObject)
				for _, k := range v.keys[start:] {
					seen[k.folded] = k.key
				}
				seen[folded] = key
			}
		}
		v.ws()
		if v.i >= len(v.b) || v.b[v.i] != ':' {
			return v.syntax("want ':' after an object key")
		}
		v.i++
		v.ws()
		v.stack = append(v.stack, frame{key: key, isKey: true})
		at := v.i
		if err := v.value(); err != nil {
			return err
		}
		switch {
		case top && v.build:
			*v.fields = append(*v.fields, Field{Key: key, Raw: v.b[at:v.i:v.i], Value: v.val})
		case top:
			*v.fields = append(*v.fields, Field{Key: key, Raw: v.b[at:v.i:v.i]})
		case v.build:
			m[key] = v.val
		}
		v.stack = v.stack[:len(v.stack)-1]
		v.ws()
		if v.i >= len(v.b) {
			return v.syntax("unterminated object")
		}
		switch v.b[v.i] {
		case ',':
			v.i++
		case '}':
			v.i++
			v.depth--
			v.val = m
			return nil
		default:
			return v.syntax("want ',' or '}' in an object")
		}
	}
}

func (v *validator) array() error {
	if err := v.enter(); err != nil {
		return err
	}
	v.i++ // '['
	var arr []any
	if v.build {
		arr = []any{}
	}
	v.ws()
	if v.i < len(v.b) && v.b[v.i] == ']' {
		v.i++
		v.depth--
		v.val = arr
		return nil
	}
	v.stack = append(v.stack, frame{})
	top := len(v.stack) - 1
	for n := 0; ; n++ {
		v.stack[top].index = n
		v.ws()
		if err := v.value(); err != nil {
			return err
		}
		if v.build {
			arr = append(arr, v.val)
		}
		v.ws()
		if v.i >= len(v.b) {
			return v.syntax("unterminated array")
		}
		switch v.b[v.i] {
		case ',':
			v.i++
		case ']':
			v.i++
			v.depth--
			v.stack = v.stack[:top]
			v.val = arr
			return nil
		default:
			return v.syntax("want ',' or ']' in an array")
		}
	}
}

func (v *validator) literal(lit string) error {
	if !strings.HasPrefix(string(v.b[v.i:min(len(v.b), v.i+len(lit))]), lit) {
		return v.syntax("invalid literal")
	}
	v.i += len(lit)
	return nil
}

func (v *validator) number() error {
	start := v.i
	end, bad := ScanNumber(v.b, v.i)
	v.i = end
	if bad != "" {
		return v.syntax(bad)
	}
	if v.build {
		v.val = json.Number(v.src[start:end])
	}
	return nil
}

// ScanNumber reads the JSON number that starts at s[i] (RFC 8259 grammar) and returns where it
// ends; bad says what is wrong when it is not a number, and end is then where reading stopped.
// The inspection walk and Validate share it, so both read numbers alike.
func ScanNumber[T string | []byte](s T, i int) (end int, bad string) {
	digits := func() {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		digits()
	default:
		return i, "invalid number"
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return i, "invalid number: no digits after '.'"
		}
		digits()
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return i, "invalid number: no digits in the exponent"
		}
		digits()
	}
	return i, ""
}

// str reads the string at v.i. With decode it returns the string's value (escapes decoded);
// otherwise it only checks it and returns "".
func (v *validator) str(decode bool) (string, error) {
	v.i++ // opening quote
	start := v.i
	plain := true // no escapes so far
	for v.i < len(v.b) {
		// Most of a document is string bytes that need no attention: skip them eight at a time.
		for v.i+8 <= len(v.b) && !hasStringSpecial(binary.LittleEndian.Uint64(v.b[v.i:])) {
			v.i += 8
		}
		if v.i >= len(v.b) {
			break
		}
		c := v.b[v.i]
		switch {
		case c == '"':
			seg := v.b[start:v.i]
			v.i++
			if plain {
				if !utf8.Valid(seg) {
					return "", fmt.Errorf("%w: in the string at offset %d", ErrInvalidUTF8, start-1)
				}
				if decode {
					if v.src != "" {
						return v.src[start : v.i-1], nil
					}
					return string(seg), nil
				}
				return "", nil
			}
			return v.unescape(seg, start, decode)
		case c == '\\':
			plain = false
			v.i++
			if v.i >= len(v.b) {
				return "", v.syntax("unterminated string")
			}
			switch v.b[v.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				v.i++
			case 'u':
				if v.i+4 >= len(v.b) || !isHex4(v.b[v.i+1:v.i+5]) {
					return "", v.syntax("invalid \\u escape")
				}
				v.i += 5
			default:
				return "", v.syntax("invalid escape")
			}
		case c < 0x20:
			return "", v.syntax("control character in a string")
		default:
			v.i++
		}
	}
	return "", v.syntax("unterminated string")
}

// hasStringSpecial reports whether any of the eight bytes in x ends a string or needs a look:
// a quote, a backslash or a control character (below 0x20). Exact, from the classic tests for a
// zero byte ((y - 0x01..) &^ y & 0x80..) and for a byte below n ((x - n×0x01..) &^ x & 0x80..).
func hasStringSpecial(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote, backslash := x^(ones*'"'), x^(ones*'\\')
	return ((x-ones*0x20)&^x|(quote-ones)&^quote|(backslash-ones)&^backslash)&highs != 0
}

// unescape decodes the escaped string seg (its syntax already checked), refusing invalid UTF-8
// and lone surrogates. Without decode it only checks.
func (v *validator) unescape(seg []byte, start int, decode bool) (string, error) {
	var sb strings.Builder
	if decode {
		sb.Grow(len(seg))
	}
	for j := 0; j < len(seg); {
		c := seg[j]
		if c != '\\' {
			r, size := utf8.DecodeRune(seg[j:])
			if r == utf8.RuneError && size <= 1 {
				return "", fmt.Errorf("%w: in the string at offset %d", ErrInvalidUTF8, start-1)
			}
			if decode {
				sb.Write(seg[j : j+size])
			}
			j += size
			continue
		}
		e := seg[j+1]
		j += 2
		var r rune
		switch e {
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'n':
			r = '\n'
		case 'r':
			r = '\r'
		case 't':
			r = '\t'
		case 'u':
			r = hex4(seg[j : j+4])
			j += 4
			if utf16.IsSurrogate(r) {
				// Only a high surrogate followed by an escaped low one is a character.
				if r >= 0xDC00 || j+6 > len(seg) || seg[j] != '\\' || seg[j+1] != 'u' {
					return "", fmt.Errorf("%w: lone surrogate escape in the string at offset %d", ErrInvalidUTF8, start-1)
				}
				lo := hex4(seg[j+2 : j+6])
				if lo < 0xDC00 || lo > 0xDFFF {
					return "", fmt.Errorf("%w: lone surrogate escape in the string at offset %d", ErrInvalidUTF8, start-1)
				}
				r = utf16.DecodeRune(r, lo)
				j += 6
			}
		default: // '"', '\\', '/'
			r = rune(e)
		}
		if decode {
			sb.WriteRune(r)
		}
	}
	return sb.String(), nil
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// fold returns one spelling shared by every key equal to k under Unicode simple case folding
// (strings.EqualFold): each rune becomes the lower case of the smallest rune in its folding
// orbit, so "K", "k" and the Kelvin sign all become "k". Plain lower-case ASCII — most keys —
// is returned as is, without allocating.
func fold(k string) string {
	simple := true
	for i := 0; i < len(k); i++ {
		if c := k[i]; c >= utf8.RuneSelf || c >= 'A' && c <= 'Z' {
			simple = false
			break
		}
	}
	if simple {
		return k
	}
	var sb strings.Builder
	sb.Grow(len(k))
	for _, r := range k {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		sb.WriteRune(unicode.ToLower(least))
	}
	return sb.String()
}

// path renders the path of the member key of the innermost object: "$", then ".name" for
// identifier keys, `["any key"]` for others and "[i]" for array elements.
func (v *validator) path(key string) string {
	p := []byte{'$'}
	for _, f := range v.stack {
		if f.isKey {
			p = appendKey(p, f.key)
		} else {
			p = append(p, '[')
			p = strconv.AppendInt(p, int64(f.index), 10)
			p = append(p, ']')
		}
	}
	return string(appendKey(p, key))
}

func appendKey(p []byte, key string) []byte {
	ident := len(key) > 0
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || (i > 0 && c >= '0' && c <= '9')) {
			ident = false
			break
		}
	}
	if ident {
		return append(append(p, '.'), key...)
	}
	p = append(p, '[')
	p = strconv.AppendQuote(p, key)
	return append(p, ']')
}
