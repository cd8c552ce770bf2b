package jsonx

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrNotCanonical is returned (wrapped) by AppendCanonical for a value it cannot render: nested
// deeper than its limit, or of a type DecodeObject never produces.
var ErrNotCanonical = errors.New("value has no canonical JSON form")

// AppendCanonical appends to dst the canonical JSON encoding of v, a value as DecodeObject builds
// it (map[string]any, []any, string, json.Number, bool, nil): no insignificant whitespace,
// object members sorted by key as UTF-16 code units (RFC 8785 §3.2.3), strings the RFC 8785 way
// (AppendCanonString), numbers exactly as written (json.Number keeps the literal). It is what
// approval.Canonicalize yields for the text v was decoded from, without reading the text again:
// the decoder already refused duplicate keys, invalid UTF-8 and lone surrogates. Objects and
// arrays nested deeper than maxDepth are refused.
func AppendCanonical(dst []byte, v any, maxDepth int) ([]byte, error) {
	return appendCanonical(dst, v, 0, maxDepth)
}

func appendCanonical(dst []byte, v any, depth, maxDepth int) ([]byte, error) {
	switch x := v.(type) {
	case map[string]any:
		if depth++; depth > maxDepth {
			return dst, fmt.Errorf("%w: nesting deeper than %d", ErrNotCanonical, maxDepth)
		}
		if len(x) == 0 {
			return append(dst, '{', '}'), nil
		}
		var small [16]string
		keys := small[:0]
		for k := range x {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, CompareUTF16)
		dst = append(dst, '{')
		var err error
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(AppendCanonString(dst, k), ':')
			if dst, err = appendCanonical(dst, x[k], depth, maxDepth); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case []any:
		if depth++; depth > maxDepth {
			return dst, fmt.Errorf("%w: nesting deeper than %d", ErrNotCanonical, maxDepth)
		}
		dst = append(dst, '[')
		var err error
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendCanonical(dst, e, depth, maxDepth); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case string:
		return AppendCanonString(dst, x), nil
	case json.Number:
		return append(dst, x...), nil
	case bool:
		if x {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case nil:
		return append(dst, "null"...), nil
	default:
		return dst, fmt.Errorf("%w: %T", ErrNotCanonical, v)
	}
}

// CompareUTF16 orders two strings by their UTF-16 code units (RFC 8785 §3.2.3) without
// converting them: code-point order differs from UTF-16 order only when a character at or
// above U+10000 (a surrogate pair, 0xD800–0xDBFF first) meets one in U+E000–U+FFFF.
func CompareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			return cmp.Compare(utf16First(ra), utf16First(rb))*2 + cmp.Compare(ra, rb)
		}
		a, b = a[na:], b[nb:]
	}
	return cmp.Compare(len(a), len(b))
}

// utf16First is the first UTF-16 code unit of r.
func utf16First(r rune) rune {
	if r >= 0x10000 {
		hi, _ := utf16.EncodeRune(r)
		return hi
	}
	return r
}

// AppendCanonString appends s (valid UTF-8) as an RFC 8785 string literal: only '"', '\\' and
// control characters are escaped, with the short forms \b \f \n \r \t and lower-case \u00xx
// otherwise.
func AppendCanonString(out []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	out = append(out, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
		case c == '\b':
			out = append(out, '\\', 'b')
		case c == '\f':
			out = append(out, '\\', 'f')
		case c == '\n':
			out = append(out, '\\', 'n')
		case c == '\r':
			out = append(out, '\\', 'r')
		case c == '\t':
			out = append(out, '\\', 't')
		case c < 0x20:
			out = append(out, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		default:
			out = append(out, c)
		}
	}
	return append(out, '"')
}
