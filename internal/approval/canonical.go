package approval

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/portcullis-ai/portcullis/internal/jsonx"
)

// Limits of the canonicaliser. Parameters that exceed them cannot be approved: a request whose
// digest cannot be computed is refused (fail closed), never approved on a partial reading.
const (
	// MaxCanonicalDepth is the deepest nesting of arrays and objects accepted.
	MaxCanonicalDepth = 128
	// MaxCanonicalSize is the largest JSON document accepted, in bytes.
	MaxCanonicalSize = 8 << 20
)

// ErrCanonical is returned (wrapped, with the byte offset) for input that is not a single valid
// JSON value, holds a duplicate object key, invalid UTF-8 or a lone surrogate escape, or exceeds
// the limits above.
var ErrCanonical = errors.New("approval: cannot canonicalise JSON")

// DigestPrefix starts every parameters digest, so the algorithm can change without ambiguity.
const DigestPrefix = "sha256:"

// Canonicalize returns the canonical encoding of one JSON value:
//
//   - no insignificant whitespace;
//   - object members sorted by key, comparing keys as UTF-16 code units (RFC 8785 §3.2.3);
//   - strings re-encoded the RFC 8785 way: only '"', '\\' and control characters are escaped,
//     with the short forms \b \f \n \r \t and lower-case \u00xx otherwise; every other character,
//     including those written as \u escapes in the input, appears as UTF-8;
//   - numbers exactly as written (validated against the JSON grammar, never re-formatted).
//
// The one departure from RFC 8785 (JCS) is the last point: JCS re-serialises numbers as IEEE-754
// doubles, which silently changes integers above 2^53 (IDs, amounts in minor units). Keeping the
// literal means "1.0" and "1" digest differently: a re-worded number needs a new approval, which
// errs on the side of asking again, never on the side of running something nobody saw.
//
// Duplicate keys are an error rather than "last one wins": two parsers that disagree on which
// duplicate counts would let an approver see one value and the tool receive another.
func Canonicalize(in []byte) ([]byte, error) {
	if len(in) > MaxCanonicalSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds the limit of %d", ErrCanonical, len(in), MaxCanonicalSize)
	}
	p := canonParser{in: in, out: make([]byte, 0, len(in))}
	p.skipSpace()
	if err := p.value(0); err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.in) {
		return nil, p.errorf("unexpected data after the JSON value")
	}
	return p.out, nil
}

// Digest returns "sha256:" followed by the hex SHA-256 of the canonical encoding of params.
// It is what a grant binds: the pipeline computes it over the parameters the tool would
// receive (not the redacted copy shown to approvers), so a changed secret changes it too.
func Digest(params []byte) (string, error) {
	c, err := Canonicalize(params)
	if err != nil {
		return "", err
	}
	return DigestCanonical(c), nil
}

type canonParser struct {
	in  []byte
	pos int
	out []byte
}

func (p *canonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", ErrCanonical, p.pos, fmt.Sprintf(format, args...))
}

func (p *canonParser) skipSpace() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *canonParser) value(depth int) error {
	if p.pos >= len(p.in) {
		return p.errorf("unexpected end of input")
	}
	switch c := p.in[p.pos]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		// Fast path: a string without escapes is already canonical as written (its bytes were
		// validated by rawStr), so it is copied through without decoding.
		if raw, ok, err := p.rawStr(); err != nil || ok {
			p.out = append(p.out, raw...)
			return err
		}
		s, err := p.str()
		if err != nil {
			return err
		}
		p.out = jsonx.AppendCanonString(p.out, s)
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	default:
		return p.errorf("unexpected character %q", c)
	}
}

func (p *canonParser) literal(word string) error {
	if !bytes.HasPrefix(p.in[p.pos:], []byte(word)) {
		return p.errorf("invalid literal")
	}
	p.pos += len(word)
	p.out = append(p.out, word...)
	return nil
}

func (p *canonParser) number() error {
	start := p.pos
	if p.in[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.in) && p.in[p.pos] == '0':
		p.pos++
	case p.pos < len(p.in) && p.in[p.pos] >= '1' && p.in[p.pos] <= '9':
		p.digits()
	default:
		return p.errorf("invalid number")
	}
	if p.pos < len(p.in) && p.in[p.pos] == '.' {
		p.pos++
		if p.digits() == 0 {
			return p.errorf("invalid number: no digits after the decimal point")
		}
	}
	if p.pos < len(p.in) && (p.in[p.pos] == 'e' || p.in[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.in) && (p.in[p.pos] == '+' || p.in[p.pos] == '-') {
			p.pos++
		}
		if p.digits() == 0 {
			return p.errorf("invalid number: no digits in the exponent")
		}
	}
	p.out = append(p.out, p.in[start:p.pos]...)
	return nil
}

func (p *canonParser) digits() int {
	n := 0
	for p.pos < len(p.in) && p.in[p.pos] >= '0' && p.in[p.pos] <= '9' {
		p.pos++
		n++
	}
	return n
}

// rawStr reads the JSON string at p.pos if it holds no escapes and no characters that need
// one, returning its quoted bytes; ok is false (and p.pos unchanged) when it needs decoding.
// DEL and U+2028/2029 need no escape in RFC 8785, so a plain string is already canonical.
func (p *canonParser) rawStr() (raw []byte, ok bool, err error) {
	i := p.pos + 1
	for i < len(p.in) {
		c := p.in[i]
		switch {
		case c == '"':
			raw = p.in[p.pos : i+1]
			p.pos = i + 1
			return raw, true, nil
		case c == '\\' || c < 0x20:
			return nil, false, nil
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(p.in[i:])
			if r == utf8.RuneError && size <= 1 {
				return nil, false, nil // str reports it with its offset
			}
			i += size
		}
	}
	return nil, false, nil
}

// str reads a JSON string at p.pos and returns its decoded value.
func (p *canonParser) str() (string, error) {
	p.pos++ // opening quote
	var b []byte
	for {
		if p.pos >= len(p.in) {
			return "", p.errorf("unterminated string")
		}
		c := p.in[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(b), nil
		case c == '\\':
			r, err := p.escape()
			if err != nil {
				return "", err
			}
			b = utf8.AppendRune(b, r)
		case c < 0x20:
			return "", p.errorf("control character %#x in string", c)
		case c < utf8.RuneSelf:
			b = append(b, c)
			p.pos++
		default:
			r, size := utf8.DecodeRune(p.in[p.pos:])
			if r == utf8.RuneError && size <= 1 {
				return "", p.errorf("invalid UTF-8")
			}
			b = append(b, p.in[p.pos:p.pos+size]...)
			p.pos += size
		}
	}
}

// escape reads one backslash escape and returns the character it stands for. Surrogate pairs are
// joined; a lone surrogate is an error (it has no UTF-8 encoding).
func (p *canonParser) escape() (rune, error) {
	if p.pos+1 >= len(p.in) {
		return 0, p.errorf("unterminated escape")
	}
	e := p.in[p.pos+1]
	p.pos += 2
	switch e {
	case '"', '\\', '/':
		return rune(e), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, err := p.hex4()
		if err != nil {
			return 0, err
		}
		if !utf16.IsSurrogate(r) {
			return r, nil
		}
		if r >= 0xDC00 || p.pos+1 >= len(p.in) || p.in[p.pos] != '\\' || p.in[p.pos+1] != 'u' {
			return 0, p.errorf("lone surrogate escape")
		}
		p.pos += 2
		r2, err := p.hex4()
		if err != nil {
			return 0, err
		}
		joined := utf16.DecodeRune(r, r2)
		if joined == utf8.RuneError {
			return 0, p.errorf("invalid surrogate pair")
		}
		return joined, nil
	default:
		return 0, p.errorf("invalid escape \\%c", e)
	}
}

func (p *canonParser) hex4() (rune, error) {
	if p.pos+4 > len(p.in) {
		return 0, p.errorf("short \\u escape")
	}
	var r rune
	for _, c := range p.in[p.pos : p.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		default:
			return 0, p.errorf("invalid \\u escape")
		}
	}
	p.pos += 4
	return r, nil
}

func (p *canonParser) array(depth int) error {
	if depth > MaxCanonicalDepth {
		return p.errorf("nesting deeper than %d", MaxCanonicalDepth)
	}
	p.pos++
	p.out = append(p.out, '[')
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == ']' {
		p.pos++
		p.out = append(p.out, ']')
		return nil
	}
	for {
		p.skipSpace()
		if err := p.value(depth); err != nil {
			return err
		}
		p.skipSpace()
		if p.pos >= len(p.in) {
			return p.errorf("unterminated array")
		}
		switch p.in[p.pos] {
		case ',':
			p.pos++
			p.out = append(p.out, ',')
		case ']':
			p.pos++
			p.out = append(p.out, ']')
			return nil
		default:
			return p.errorf("expected ',' or ']' in array")
		}
	}
}

type canonMember struct {
	key        string
	start, end int // the member's rendered value in the object's output region
}

func (p *canonParser) object(depth int) error {
	if depth > MaxCanonicalDepth {
		return p.errorf("nesting deeper than %d", MaxCanonicalDepth)
	}
	p.pos++
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == '}' {
		p.pos++
		p.out = append(p.out, '{', '}')
		return nil
	}
	// Values are rendered one after another at the end of p.out, then the region is
	// rearranged in key order.
	base := len(p.out)
	var members []canonMember
	var seen map[string]struct{}
	for {
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != '"' {
			return p.errorf("expected a string key in object")
		}
		var key string
		if raw, ok, err := p.rawStr(); err != nil {
			return err
		} else if ok {
			key = string(raw[1 : len(raw)-1])
		} else if key, err = p.str(); err != nil {
			return err
		}
		// Small objects (the common case) are checked by scanning; large ones by a map, so a
		// hostile object with many keys stays linear.
		if seen != nil {
			if _, dup := seen[key]; dup {
				return p.errorf("duplicate key %q", key)
			}
			seen[key] = struct{}{}
		} else {
			for _, m := range members {
				if m.key == key {
					return p.errorf("duplicate key %q", key)
				}
			}
			if len(members) == 16 {
				seen = make(map[string]struct{}, 64)
				for _, m := range members {
					seen[m.key] = struct{}{}
				}
				seen[key] = struct{}{}
			}
		}
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != ':' {
			return p.errorf("expected ':' after object key")
		}
		p.pos++
		p.skipSpace()
		start := len(p.out)
		if err := p.value(depth); err != nil {
			return err
		}
		members = append(members, canonMember{key: key, start: start - base, end: len(p.out) - base})
		p.skipSpace()
		if p.pos >= len(p.in) {
			return p.errorf("unterminated object")
		}
		if p.in[p.pos] == '}' {
			p.pos++
			break
		}
		if p.in[p.pos] != ',' {
			return p.errorf("expected ',' or '}' in object")
		}
		p.pos++
	}
	slices.SortFunc(members, func(a, b canonMember) int { return jsonx.CompareUTF16(a.key, b.key) })
	values := append([]byte(nil), p.out[base:]...)
	out := append(p.out[:base], '{')
	for i, m := range members {
		if i > 0 {
			out = append(out, ',')
		}
		out = jsonx.AppendCanonString(out, m.key)
		out = append(out, ':')
		out = append(out, values[m.start:m.end]...)
	}
	p.out = append(out, '}')
	return nil
}

// CanonicalValue returns the canonical encoding of params already decoded by the one strict
// parse of a call's parameters (jsonx.DecodeObject), size the length of the text they were
// decoded from: the same bytes Canonicalize returns for that text, within the same limits, and
// without reading the text a second time. The decoder refused what Canonicalize refuses
// (duplicate keys — and, stricter, keys equal up to case —, invalid UTF-8, lone surrogates), and
// kept every number's literal.
func CanonicalValue(params map[string]any, size int) ([]byte, error) {
	if size > MaxCanonicalSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds the limit of %d", ErrCanonical, size, MaxCanonicalSize)
	}
	out, err := jsonx.AppendCanonical(make([]byte, 0, size), params, MaxCanonicalDepth)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCanonical, err)
	}
	return out, nil
}

// DigestCanonical is Digest of parameters whose canonical encoding is c (Canonicalize,
// CanonicalValue).
func DigestCanonical(c []byte) string {
	sum := sha256.Sum256(c)
	return DigestPrefix + hex.EncodeToString(sum[:])
}
