// Package jsonx is the decision path's JSON decoding: a request body and a call's parameters are
// decoded on every decision, and the standard library's reflection decoder was a tenth of a
// decision's CPU. It uses github.com/segmentio/encoding/json (already in the binary through the
// MCP SDK), which decodes the same JSON into the same Go values several times faster, and adds
// what that decoder lacks: Validate, which refuses before any decoder sees it a document nested
// too deep, holding invalid UTF-8, or naming an object member twice (exactly or up to case) —
// input that two readers could read two ways.
package jsonx

import (
	"bytes"
	"errors"
	"fmt"

	segjson "github.com/segmentio/encoding/json"
)

// MaxNesting is the deepest nesting of objects and arrays DecodeObject and DecodeStrict accept:
// the standard library decoder's own limit.
const MaxNesting = 10000

// ErrTooDeep is returned for a document nested deeper than MaxNesting.
var ErrTooDeep = errors.New("JSON nested too deep")

// Depth returns the deepest nesting of objects and arrays in a JSON text, without decoding it.
func Depth(b []byte) int {
	depth, deepest := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = stringEnd(b, i)
		case '{', '[':
			depth++
			deepest = max(deepest, depth)
		case '}', ']':
			depth--
		}
	}
	return deepest
}

// CountValues counts the values in a JSON text — every string, number, true, false, null, object
// and array, the outermost included; object keys are not values — without decoding it. It is
// exact for valid JSON: {} is 1, {"a":[]} is 2, {"a":[1,2]} is 4. (It used to count one value
// per container and comma, so an empty container counted twice.)
func CountValues(b []byte) int {
	n := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			i = stringEnd(b, i)
			n++
		case c == '{' || c == '[':
			n++
		case c == ':':
			n-- // the string before it was a key
		case c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'):
			for i+1 < len(b) && isScalarByte(b[i+1]) {
				i++
			}
			n++
		}
	}
	return max(n, 0)
}

// isScalarByte is a byte that continues a number or a literal (true, false, null).
func isScalarByte(c byte) bool {
	return c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// stringEnd returns the index of the quote that closes the string opened at b[open] (len(b)-1
// if it is never closed). It jumps from quote to quote: a quote preceded by an odd number of
// backslashes is escaped. Strings are most of a typical document, so this is what makes the
// scans cheap.
func stringEnd(b []byte, open int) int {
	i := open + 1
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return len(b) - 1
		}
		i += q
		k := i - 1
		for k > open && b[k] == '\\' {
			k--
		}
		if (i-1-k)%2 == 0 {
			return i
		}
		i++
	}
}

// DecodeObject decodes a JSON object into its Go form, numbers as json.Number: the exact text,
// because a float64 rounds integers beyond 2^53 (9007199254740993 would read as
// 9007199254740992) while the tool that runs reads them exactly. Empty input is an empty object;
// anything but one object is an error. It is one pass: the same reading refuses what Validate
// refuses (a key named twice, exactly or up to case — a last-wins decoder would hand the policy
// one reading of arguments that a first-wins tool reads otherwise; invalid UTF-8; depth) and
// builds the value.
func DecodeObject(raw []byte) (map[string]any, error) {
	if len(trimSpace(raw)) == 0 {
		return map[string]any{}, nil
	}
	v, err := buildObject(raw, nil, MaxNesting)
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

// buildObject is DecodeObject's pass over raw (not empty); with fields, the outermost object's
// members go there instead of into a map.
func buildObject(raw []byte, fields *[]Field, maxDepth int) (any, error) {
	if err := objectFirst(trimSpace(raw)); err != nil {
		return nil, err
	}
	var keys [16]seenKey
	var stack [8]frame
	v := validator{b: raw, src: string(raw), maxDepth: maxDepth, build: true, keys: keys[:0], stack: stack[:0], fields: fields}
	if err := v.document(); err != nil {
		return nil, err
	}
	return v.val, nil
}

// Field is one member of the object DecodeFields read.
type Field struct {
	// Key is the member's name, its escapes decoded.
	Key string
	// Raw is the member's value exactly as written: a slice of the input, not a copy.
	Raw []byte
	// Value is Raw decoded as DecodeObject decodes a value (objects as map[string]any, numbers
	// as json.Number).
	Value any
}

// DecodeFields decodes a JSON object in the one pass DecodeObject makes, refusing what it
// refuses, and returns the object's members in order, each with its exact text and its decoded
// value. A request body is read this way once: the caller takes each member it knows, and a
// member whose value it must also keep as text (a call's parameters, forwarded and recorded as
// received) is not parsed a second time to be decoded. Unlike DecodeObject, empty input is an
// error: a body must be an object.
func DecodeFields(raw []byte) ([]Field, error) { return DecodeFieldsDepth(raw, MaxNesting) }

// DecodeFieldsDepth is DecodeFields refusing nesting deeper than maxDepth (the top-level object
// is 1, as Depth counts; <= 0 or above MaxNesting: MaxNesting). A request body read this way
// needs no separate scan for its depth: one that succeeds is nested no deeper than maxDepth,
// and valid UTF-8 throughout.
func DecodeFieldsDepth(raw []byte, maxDepth int) ([]Field, error) {
	if maxDepth <= 0 || maxDepth > MaxNesting {
		maxDepth = MaxNesting
	}
	if len(trimSpace(raw)) == 0 {
		return nil, fmt.Errorf("%w: want a JSON object, got nothing", ErrSyntax)
	}
	fields := make([]Field, 0, 8)
	if _, err := buildObject(raw, &fields, maxDepth); err != nil {
		return nil, err
	}
	return fields, nil
}

// ObjectKeys returns the member names of a JSON object, in order, escapes decoded, without
// decoding the values: Validate's pass (the same refusals, with the default Limits) that keeps
// the outermost keys.
func ObjectKeys(raw []byte) ([]string, error) {
	t := trimSpace(raw)
	if len(t) == 0 {
		return nil, fmt.Errorf("%w: want a JSON object, got nothing", ErrSyntax)
	}
	if err := objectFirst(t); err != nil {
		return nil, err
	}
	var fields [16]Field
	members := fields[:0]
	var keys [16]seenKey
	var stack [8]frame
	v := validator{b: raw, maxDepth: MaxNesting, keys: keys[:0], stack: stack[:0], fields: &members}
	if err := v.document(); err != nil {
		return nil, err
	}
	names := make([]string, len(members))
	for i, f := range members {
		names[i] = f.Key
	}
	return names, nil
}

// DecodeStrict decodes exactly one JSON value into v, refusing what Validate refuses, unknown
// object fields and trailing data. Fields match their names exactly: "TOOL" is not "tool" (the
// decoder would match it case-insensitively otherwise, and a body naming both would be read
// one way here and another way by any reader that matches exactly).
func DecodeStrict(body []byte, v any) error {
	return decodeStrict(body, v, Limits{})
}

// DecodeEnvelope is DecodeStrict for an object whose members hold values the caller validates
// one by one (json.RawMessage): it refuses duplicate keys in the outermost object only, so that a
// duplicate inside one of those values is that value's error alone. Everything else (syntax,
// UTF-8, depth, unknown fields) is checked over the whole body.
func DecodeEnvelope(body []byte, v any) error {
	return decodeStrict(body, v, Limits{KeysDepth: 1})
}

// DecodeEnvelopeDepth is DecodeEnvelope refusing nesting deeper than maxDepth (<= 0 or above
// MaxNesting: MaxNesting): a body it accepts is nested no deeper, and valid UTF-8 throughout.
func DecodeEnvelopeDepth(body []byte, v any, maxDepth int) error {
	if maxDepth <= 0 || maxDepth > MaxNesting {
		maxDepth = MaxNesting
	}
	return decodeStrict(body, v, Limits{KeysDepth: 1, MaxDepth: maxDepth})
}

func decodeStrict(body []byte, v any, lim Limits) error {
	if err := Validate(body, lim); err != nil {
		return err
	}
	rest, err := segjson.Parse(body, v, segjson.DisallowUnknownFields|segjson.DontMatchCaseInsensitiveStructFields)
	if err != nil {
		return err
	}
	if len(trimSpace(rest)) != 0 {
		return errors.New("trailing data after the object")
	}
	return nil
}

// trimSpace removes JSON's whitespace (space, tab, CR, LF) — not the wider set bytes.TrimSpace
// knows, which would accept a form feed after the value that JSON does not.
func trimSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }
