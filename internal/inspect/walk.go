package inspect

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/portcullis-ai/portcullis/internal/jsonx"
)

// ErrMalformed is returned (wrapped) when the inspected data is not valid JSON or not valid UTF-8.
// Callers deny on it: what cannot be parsed cannot be inspected.
var ErrMalformed = errors.New("malformed input")

// errStop is returned by a visit function to end the walk early (a cap was reached).
var errStop = errors.New("walk stopped")

// errTooDeep ends the walk when nesting exceeds the depth cap.
var errTooDeep = errors.New("nesting too deep")

// visitFunc receives each string leaf and each notable object key. path is only valid during the
// call (the walker reuses its buffer).
type visitFunc func(path []byte, key, s string, isKey bool) error

// visitor is what a walk reports to: visit is a visitFunc; array receives the string elements of
// an array of strings (see maxJoinElems) after their own visits, with the array's path and key
// (path and elems are only valid during the call). An interface rather than two func values:
// binding a method value per walk would allocate.
type visitor interface {
	visit(path []byte, key, s string, isKey bool) error
	array(path []byte, key string, elems []string) error
}

// funcVisitor is a visitFunc as a visitor that wants no arrays.
type funcVisitor visitFunc

func (f funcVisitor) visit(path []byte, key, s string, isKey bool) error {
	return f(path, key, s, isKey)
}
func (funcVisitor) array([]byte, string, []string) error { return nil }

// maxJoinElems and maxJoinBytes bound the arrays whose elements are also handed over together:
// the parts a tool might join into one string are few and short.
const (
	maxJoinElems = 16
	maxJoinBytes = 1024
)

// walker is a strict, allocation-light JSON parser (RFC 8259) that yields strings with their
// JSON paths. It is hand-written rather than encoding/json because inspection must see every
// string exactly once, with its path, at tens of megabytes per second, and must stop at a depth cap
// instead of recursing without bound.
type walker struct {
	src      string
	pos      int
	depth    int
	maxDepth int
	path     []byte
	key      string // the member name the next value belongs to (arrays pass their own on)
	v        visitor
	arrays   bool     // v wants arrays
	str1     string   // the last string value parsed (for arrays)
	elems    []string // the string elements of the arrays being walked, innermost last
	sb       strings.Builder
}

// walkJSON parses src and calls visit for every string value and object key. It returns an error
// wrapping ErrMalformed for invalid input, errTooDeep when maxDepth is exceeded, or the visit
// function's error.
func walkJSON(src string, maxDepth int, path []byte, visit visitFunc) error {
	return walkJSONWith(src, maxDepth, path, funcVisitor(visit), false, nil)
}

// walkJSONWith is walkJSON reporting to v, which also receives (v.array) every array of two to
// maxJoinElems strings of at most maxJoinBytes in all when arrays is set. elems, when not nil, is
// a buffer for the elements that the walk may grow and leaves grown for the next.
func walkJSONWith(src string, maxDepth int, path []byte, v visitor, arrays bool, elems *[]string) error {
	w := walker{src: src, maxDepth: maxDepth, path: append(path[:0], '$'), v: v, arrays: arrays}
	if elems != nil {
		w.elems = (*elems)[:0]
		defer func() { *elems = w.elems[:0] }()
	}
	w.skipWS()
	if err := w.value(); err != nil {
		return err
	}
	w.skipWS()
	if w.pos != len(w.src) {
		return w.errorf("unexpected data after the top-level value")
	}
	return nil
}

func (w *walker) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: JSON offset %d: %s", ErrMalformed, w.pos, fmt.Sprintf(format, args...))
}

func (w *walker) skipWS() {
	for w.pos < len(w.src) {
		switch w.src[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

func (w *walker) value() error {
	if w.pos >= len(w.src) {
		return w.errorf("unexpected end of input")
	}
	switch c := w.src[w.pos]; {
	case c == '{':
		return w.object()
	case c == '[':
		return w.array()
	case c == '"':
		s, err := w.str()
		if err != nil {
			return err
		}
		w.str1 = s
		return w.v.visit(w.path, w.key, s, false)
	case c == 't':
		return w.literal("true")
	case c == 'f':
		return w.literal("false")
	case c == 'n':
		return w.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return w.number()
	default:
		return w.errorf("unexpected character %q", c)
	}
}

func (w *walker) literal(lit string) error {
	if !strings.HasPrefix(w.src[w.pos:], lit) {
		return w.errorf("invalid literal")
	}
	w.pos += len(lit)
	return nil
}

func (w *walker) number() error {
	end, bad := jsonx.ScanNumber(w.src, w.pos)
	w.pos = end
	if bad != "" {
		return w.errorf("%s", bad)
	}
	return nil
}

func (w *walker) enter() error {
	w.depth++
	if w.depth > w.maxDepth {
		return errTooDeep
	}
	return nil
}

func (w *walker) object() error {
	if err := w.enter(); err != nil {
		return err
	}
	w.pos++ // '{'
	w.skipWS()
	if w.pos < len(w.src) && w.src[w.pos] == '}' {
		w.pos++
		w.depth--
		return nil
	}
	base := len(w.path)
	for {
		w.skipWS()
		if w.pos >= len(w.src) || w.src[w.pos] != '"' {
			return w.errorf("expected a string object key")
		}
		key, err := w.str()
		if err != nil {
			return err
		}
		w.path = appendKey(w.path[:base], key)
		if !plainKey(key) {
			if err := w.v.visit(w.path, key, key, true); err != nil {
				return err
			}
		}
		w.skipWS()
		if w.pos >= len(w.src) || w.src[w.pos] != ':' {
			return w.errorf("expected ':' after object key")
		}
		w.pos++
		w.skipWS()
		w.key = key
		if err := w.value(); err != nil {
			return err
		}
		w.skipWS()
		if w.pos >= len(w.src) {
			return w.errorf("unexpected end of input in object")
		}
		switch w.src[w.pos] {
		case ',':
			w.pos++
		case '}':
			w.pos++
			w.path = w.path[:base]
			w.depth--
			return nil
		default:
			return w.errorf("expected ',' or '}' in object")
		}
	}
}

func (w *walker) array() error {
	if err := w.enter(); err != nil {
		return err
	}
	w.pos++ // '['
	w.skipWS()
	if w.pos < len(w.src) && w.src[w.pos] == ']' {
		w.pos++
		w.depth--
		return nil
	}
	base := len(w.path)
	key := w.key
	// The string elements so far (w.elems[eb:]), while every element is a string and they stay
	// within the joining bounds (joinable false: not this array).
	eb := len(w.elems)
	joinable, total := w.arrays, 0
	for i := 0; ; i++ {
		w.path = append(strconv.AppendInt(append(w.path[:base], '['), int64(i), 10), ']')
		w.skipWS()
		w.key = key // elements of {"paths": [...]} are paths too
		isStr := w.pos < len(w.src) && w.src[w.pos] == '"'
		if err := w.value(); err != nil {
			return err
		}
		if joinable {
			total += len(w.str1)
			if joinable = isStr && i < maxJoinElems && total <= maxJoinBytes; joinable {
				w.elems = append(w.elems, w.str1)
			}
		}
		w.skipWS()
		if w.pos >= len(w.src) {
			return w.errorf("unexpected end of input in array")
		}
		switch w.src[w.pos] {
		case ',':
			w.pos++
		case ']':
			w.pos++
			w.path = w.path[:base]
			w.depth--
			elems := w.elems[eb:]
			w.elems = w.elems[:eb] // (an error ends the walk: only this return needs to restore it)
			if joinable && i >= 1 {
				return w.v.array(w.path, key, elems)
			}
			return nil
		default:
			return w.errorf("expected ',' or ']' in array")
		}
	}
}

// str parses a JSON string at w.pos. Without escapes it returns a substring of the source (no
// allocation); otherwise it decodes into a new string. Lone surrogates become U+FFFD, as in
// encoding/json.
func (w *walker) str() (string, error) {
	w.pos++ // opening quote
	start := w.pos
	s := w.src
	i, nonASCII := plainRun(s, start)
	if i >= len(s) {
		w.pos = i
		return "", w.errorf("unterminated string")
	}
	switch c := s[i]; {
	case c == '"':
		w.pos = i + 1
		if !nonASCII {
			return s[start:i], nil // ASCII is valid UTF-8
		}
		return s[start:i], w.checkUTF8(s[start:i])
	case c < 0x20:
		w.pos = i
		return "", w.errorf("control character in string")
	}
	// Slow path: escapes. Size the buffer once (the decoded string is never longer than the
	// encoded one) and copy the runs between escapes whole.
	end := i
	for {
		if end, _ = plainRun(s, end); end >= len(s) || s[end] == '"' {
			break
		}
		if s[end] == '\\' {
			end++
		}
		end++
	}
	w.sb.Reset()
	w.sb.Grow(min(end, len(s)) - start)
	w.sb.WriteString(s[start:i])
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			w.pos = i + 1
			out := w.sb.String()
			w.sb = strings.Builder{}
			if !nonASCII {
				// Escapes decode to whole runes (\u to valid UTF-8), so only copied bytes can
				// make the string invalid.
				return out, nil
			}
			return out, w.checkUTF8(out)
		case c < 0x20:
			w.pos = i
			return "", w.errorf("control character in string")
		case c != '\\':
			j, hi := plainRun(s, i)
			nonASCII = nonASCII || hi
			w.sb.WriteString(s[i:j])
			i = j
			continue
		}
		if i+1 >= len(s) {
			break
		}
		switch e := s[i+1]; e {
		case '"', '\\', '/':
			w.sb.WriteByte(e)
		case 'b':
			w.sb.WriteByte('\b')
		case 'f':
			w.sb.WriteByte('\f')
		case 'n':
			w.sb.WriteByte('\n')
		case 'r':
			w.sb.WriteByte('\r')
		case 't':
			w.sb.WriteByte('\t')
		case 'u':
			if i+6 > len(s) {
				w.pos = i
				return "", w.errorf("short \\u escape")
			}
			r, ok := hex4(s[i+2 : i+6])
			if !ok {
				w.pos = i
				return "", w.errorf("invalid \\u escape")
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if x, ok := hex4(s[i+2 : i+6]); ok {
						r2 = x
					}
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					i += 6
					r = d
				} else {
					r = utf8.RuneError
				}
			}
			w.sb.WriteRune(r)
			continue
		default:
			w.pos = i
			return "", w.errorf("invalid escape \\%c", e)
		}
		i += 2
	}
	w.pos = i
	return "", w.errorf("unterminated string")
}

func (w *walker) checkUTF8(s string) error {
	if !utf8.ValidString(s) {
		return w.errorf("invalid UTF-8 in string")
	}
	return nil
}

// plainRun returns the end of the run of s from i that holds no quote, backslash or control
// byte, and whether the run holds a non-ASCII byte. It reads eight bytes at a time: every
// string of the input passes here.
func plainRun(s string, i int) (int, bool) {
	var hi uint64
	for i+8 <= len(s) {
		x := load8(s, i)
		if hasByte(x, '"') || hasByte(x, '\\') || hasLess(x, 0x20) {
			break
		}
		hi |= x
		i += 8
	}
	for ; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' || c < 0x20 {
			break
		}
		hi |= uint64(c)
	}
	return i, hi&swarHigh != 0
}

// plainKey reports whether an object key is an ordinary short identifier made of letters and
// underscores only, of at most three words ("name", "user_id", "customerFirstName"). Such keys
// cannot carry any attack a detector looks for, so they are not inspected as values; every other
// key ("$where", "../x", a URL, anything with digits, a sentence spelt as an identifier such as
// "ignore_previous_instructions") is.
func plainKey(k string) bool {
	if len(k) == 0 || len(k) > 32 {
		return false
	}
	words := 1
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z':
		case c >= 'A' && c <= 'Z':
			if i > 0 && k[i-1] >= 'a' && k[i-1] <= 'z' {
				words++
			}
		case c == '_':
			if i > 0 && k[i-1] != '_' {
				words++
			}
		default:
			return false
		}
	}
	return words <= 3
}

// appendKey appends the path segment for an object member: ".name" for identifiers,
// `["any key"]` otherwise.
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

// walkValue calls visit for every string value and notable object key of v, a JSON value already
// decoded by the one strict parse of a call's parameters (jsonx.DecodeObject: map[string]any,
// []any, string, json.Number, bool, nil), with the paths walkJSON gives them. The decoder already
// refused what walkJSON refuses (malformed text, invalid UTF-8), so nothing is read twice.
// Members are visited in key order (byte-wise), so a call's findings and caps do not depend on
// the map's order; keys is scratch for that order, reused across calls.
func walkValue(v any, maxDepth int, path []byte, keys *[]string, visit visitFunc) error {
	return walkValueWith(v, maxDepth, path, keys, funcVisitor(visit), false, nil)
}

// walkValueWith is walkValue reporting to vis, which also receives the arrays walkJSONWith gives
// it when arrays is set; elems is scratch for their elements, as there.
func walkValueWith(v any, maxDepth int, path []byte, keys *[]string, vis visitor, arrays bool, elems *[]string) error {
	w := valueWalker{maxDepth: maxDepth, path: append(path[:0], '$'), keys: keys, v: vis, arrays: arrays, elems: elems}
	return w.value(v)
}

type valueWalker struct {
	depth, maxDepth int
	path            []byte
	key             string // the member name the next value belongs to (arrays pass their own on)
	keys            *[]string
	v               visitor
	arrays          bool      // v wants arrays
	elems           *[]string // scratch for an array's elements
}

func (w *valueWalker) value(v any) error {
	switch x := v.(type) {
	case string:
		return w.v.visit(w.path, w.key, x, false)
	case map[string]any:
		if w.depth++; w.depth > w.maxDepth {
			return errTooDeep
		}
		// This object's keys sit at the end of the shared scratch while its members are walked
		// (nested objects append theirs after them).
		ks := *w.keys
		base := len(ks)
		for k := range x {
			ks = append(ks, k)
		}
		slices.Sort(ks[base:])
		*w.keys = ks
		pathBase := len(w.path)
		for i := base; i < len(ks); i++ {
			key := (*w.keys)[i]
			w.path = appendKey(w.path[:pathBase], key)
			if !plainKey(key) {
				if err := w.v.visit(w.path, key, key, true); err != nil {
					return err
				}
			}
			w.key = key
			if err := w.value(x[key]); err != nil {
				return err
			}
		}
		*w.keys = (*w.keys)[:base]
		w.path = w.path[:pathBase]
		w.depth--
	case []any:
		if w.depth++; w.depth > w.maxDepth {
			return errTooDeep
		}
		pathBase, key := len(w.path), w.key
		for i, e := range x {
			w.path = append(strconv.AppendInt(append(w.path[:pathBase], '['), int64(i), 10), ']')
			w.key = key // elements of {"paths": [...]} are paths too
			if err := w.value(e); err != nil {
				return err
			}
		}
		w.path = w.path[:pathBase]
		w.depth--
		if w.arrays {
			return w.array(x, key)
		}
	}
	return nil
}

// array hands x to the visitor as walkJSONWith does: two to maxJoinElems strings of at most
// maxJoinBytes in all, after their own visits.
func (w *valueWalker) array(x []any, key string) error {
	if len(x) < 2 || len(x) > maxJoinElems {
		return nil
	}
	es, total := (*w.elems)[:0], 0
	for _, e := range x {
		s, ok := e.(string)
		if total += len(s); !ok || total > maxJoinBytes {
			return nil
		}
		es = append(es, s)
	}
	*w.elems = es[:0]
	return w.v.array(w.path, key, es)
}
