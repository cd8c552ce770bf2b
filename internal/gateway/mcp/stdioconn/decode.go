package stdioconn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// maxDepth bounds nesting like the SDK's decoder does (it rejects more than 1000 levels), so a
// message the SDK would refuse cannot reach it through this transport.
const maxDepth = 1000

// errSyntax means the line is not JSON; errInvalid that it is JSON but not a JSON-RPC message
// this transport accepts. The two are answered with different JSON-RPC error codes.
var (
	errSyntax  = errors.New("not JSON")
	errInvalid = errors.New("not a JSON-RPC message")
)

// decodeLine decodes one line: a JSON-RPC message or a batch (a JSON array) of them. Params,
// results and error data alias line, which the caller must not reuse.
//
// It reads keys case-sensitively and refuses top-level keys that differ from a JSON-RPC key only
// by case, and duplicate JSON-RPC keys. The SDK's own decoder also matches keys exactly, but a
// server or inspector behind the gateway that matches them case-insensitively, or takes the first
// of two duplicates instead of the last, would read another method or id than the one decided
// on; such a message has no honest use, so it is refused rather than interpreted.
func decodeLine(line []byte) (msgs []jsonrpc.Message, batch bool, err error) {
	p := parser{b: line}
	p.ws()
	if p.peek() == '[' {
		batch = true
		err := p.container('[', ']', func() error {
			msg, err := p.message()
			msgs = append(msgs, msg)
			return err
		})
		if err != nil {
			return nil, true, err
		}
		if len(msgs) == 0 {
			return nil, true, p.invalid("empty batch")
		}
	} else {
		msg, err := p.message()
		if err != nil {
			return nil, false, err
		}
		msgs = []jsonrpc.Message{msg}
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, batch, p.syntax()
	}
	return msgs, batch, nil
}

// parser scans one line of JSON. It validates everything it passes over with the grammar of
// encoding/json's json.Valid, so what it accepts is JSON.
type parser struct {
	b     []byte
	i     int
	depth int
}

const eof = 0

func (p *parser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return eof
}

func (p *parser) next() byte {
	c := p.peek()
	p.i++
	return c
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) syntax() error { return fmt.Errorf("%w: offset %d", errSyntax, p.i) }

// invalid reports a semantic error, unless the line turns out not to be JSON at all.
func (p *parser) invalid(format string, args ...any) error {
	err := fmt.Errorf("%w: "+format, append([]any{errInvalid}, args...)...)
	if !json.Valid(p.b) {
		return fmt.Errorf("%w (and %v)", errSyntax, err)
	}
	return err
}

// member keys of a message, as bits to detect duplicates.
const (
	hasVersion = 1 << iota
	hasID
	hasMethod
	hasParams
	hasResult
	hasError
)

var (
	messageKeys = []string{"jsonrpc", "id", "method", "params", "result", "error"}
	errorKeys   = []string{"code", "message", "data"}
)

// otherValue passes over the value of a key that is none of known, refusing a key that differs
// from one of them only by case: a laxer reader would take it for that one.
func (p *parser) otherValue(key string, known []string) error {
	for _, k := range known {
		if foldEqual(key, k) {
			return p.invalid("key %q differs from %q only by case", key, k)
		}
	}
	return p.value()
}

// once notes that the key with this bit was read, refusing it the second time (bit 0: a key
// that may repeat, being ignored).
func (p *parser) once(seen *int, bit int, key string) error {
	if *seen&bit != 0 {
		return p.invalid("duplicate key %q", key)
	}
	*seen |= bit
	return nil
}

// message decodes one JSON-RPC object the way the SDK's jsonrpc.DecodeMessage does (a "method"
// makes it a request; otherwise it is a response and needs an id), with the refusals described
// at decodeLine and a few stricter value checks: the method must be a string, an id a string,
// null or an integer that a float64 holds exactly, an error code an integer.
func (p *parser) message() (jsonrpc.Message, error) {
	if p.peek() != '{' {
		if err := p.value(); err != nil {
			return nil, err
		}
		return nil, p.invalid("a message must be an object")
	}
	var (
		seen            int
		version, method string
		id              jsonrpc.ID
		params, result  json.RawMessage
		wireErr         *jsonrpc.Error
		versionOK       bool
	)
	err := p.container('{', '}', func() error {
		key, err := p.key()
		if err != nil {
			return err
		}
		bit := 0
		switch key {
		case "jsonrpc":
			bit = hasVersion
			var ok bool
			version, ok, err = p.stringValue()
			versionOK = ok
		case "id":
			bit = hasID
			id, err = p.id()
		case "method":
			bit = hasMethod
			var ok bool
			if method, ok, err = p.stringValue(); err == nil && !ok {
				err = p.invalid("method is not a string")
			}
		case "params":
			bit = hasParams
			params, err = p.raw()
		case "result":
			bit = hasResult
			result, err = p.raw()
		case "error":
			bit = hasError
			wireErr, err = p.errorObject()
		default:
			err = p.otherValue(key, messageKeys)
		}
		if err == nil {
			err = p.once(&seen, bit, key)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if !versionOK || version != "2.0" {
		return nil, p.invalid("jsonrpc must be \"2.0\"")
	}
	if seen&hasMethod != 0 {
		return &jsonrpc.Request{ID: id, Method: method, Params: params}, nil
	}
	if !id.IsValid() {
		return nil, p.invalid("a response needs an id")
	}
	resp := &jsonrpc.Response{ID: id, Result: result}
	if wireErr != nil {
		resp.Error = wireErr
	}
	return resp, nil
}

// key reads an object key and the colon after it.
func (p *parser) key() (string, error) {
	if p.peek() != '"' {
		return "", p.syntax()
	}
	s, err := p.str()
	if err != nil {
		return "", err
	}
	p.ws()
	if p.next() != ':' {
		return "", p.syntax()
	}
	p.ws()
	return s, nil
}

// stringValue reads a string value; ok is false (and the value skipped) if it is another type.
func (p *parser) stringValue() (s string, ok bool, err error) {
	if p.peek() != '"' {
		return "", false, p.value()
	}
	s, err = p.str()
	return s, err == nil, err
}

// str reads a string token and returns its decoded value. Invalid UTF-8 is refused rather than
// replaced, so no two distinct byte strings decode to the same name.
func (p *parser) str() (string, error) {
	start := p.i
	if err := p.skipString(); err != nil {
		return "", err
	}
	tok := p.b[start:p.i]
	if !utf8.Valid(tok) {
		return "", p.invalid("string is not UTF-8")
	}
	if bytes.IndexByte(tok, '\\') < 0 {
		return string(tok[1 : len(tok)-1]), nil
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return "", p.syntax()
	}
	return s, nil
}

// skipString passes over a string token without decoding it.
func (p *parser) skipString() error {
	p.i++
	for {
		if p.i >= len(p.b) {
			return p.syntax()
		}
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return nil
		case c < 0x20:
			return p.syntax()
		case c == '\\':
			p.i++
			switch p.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				p.i++
				for range 4 {
					if !isHex(p.peek()) {
						return p.syntax()
					}
					p.i++
				}
			default:
				return p.syntax()
			}
		default:
			p.i++
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// maxExactInt bounds numeric ids: the SDK reads them as float64, which holds every integer below
// 2^53 exactly; a larger literal may round to another number, and the answer would carry an id
// the peer never sent.
const maxExactInt = 1 << 53

// id reads a request id: a string, an integer or null (no id: a notification).
func (p *parser) id() (jsonrpc.ID, error) {
	switch c := p.peek(); {
	case c == '"':
		s, err := p.str()
		if err != nil {
			return jsonrpc.ID{}, err
		}
		return jsonrpc.MakeID(s)
	case c == '-' || '0' <= c && c <= '9':
		start := p.i
		if err := p.number(); err != nil {
			return jsonrpc.ID{}, err
		}
		f, err := strconv.ParseFloat(string(p.b[start:p.i]), 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) >= maxExactInt {
			return jsonrpc.ID{}, p.invalid("id %s is not an integer below 2^53", p.b[start:p.i])
		}
		return jsonrpc.MakeID(f)
	case c == 'n':
		return jsonrpc.ID{}, p.literal("null")
	default:
		if err := p.value(); err != nil {
			return jsonrpc.ID{}, err
		}
		return jsonrpc.ID{}, p.invalid("id must be a string, a number or null")
	}
}

// raw reads any value and returns its bytes.
func (p *parser) raw() (json.RawMessage, error) {
	start := p.i
	if err := p.value(); err != nil {
		return nil, err
	}
	return json.RawMessage(p.b[start:p.i:p.i]), nil
}

// errorObject reads a response's error: null or {"code": integer, "message": string, "data": any},
// keys matched exactly as for the message.
func (p *parser) errorObject() (*jsonrpc.Error, error) {
	if p.peek() == 'n' {
		return nil, p.literal("null")
	}
	if p.peek() != '{' {
		if err := p.value(); err != nil {
			return nil, err
		}
		return nil, p.invalid("error must be an object")
	}
	e := &jsonrpc.Error{}
	seen := 0
	err := p.container('{', '}', func() error {
		key, err := p.key()
		if err != nil {
			return err
		}
		bit := 0
		switch key {
		case "code":
			bit = 1
			start := p.i
			if c := p.peek(); c != '-' && (c < '0' || c > '9') {
				if err := p.value(); err != nil {
					return err
				}
				return p.invalid("error code must be an integer")
			}
			if err := p.number(); err != nil {
				return err
			}
			if e.Code, err = strconv.ParseInt(string(p.b[start:p.i]), 10, 64); err != nil {
				return p.invalid("error code %s is not an integer", p.b[start:p.i])
			}
		case "message":
			bit = 2
			var ok bool
			if e.Message, ok, err = p.stringValue(); err == nil && !ok {
				err = p.invalid("error message must be a string")
			}
		case "data":
			bit = 4
			e.Data, err = p.raw()
		default:
			err = p.otherValue(key, errorKeys)
		}
		if err == nil {
			err = p.once(&seen, bit, key)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// value passes over any JSON value, validating it.
func (p *parser) value() error {
	switch c := p.peek(); {
	case c == '{':
		return p.container('{', '}', p.member)
	case c == '[':
		return p.container('[', ']', p.value)
	case c == '"':
		return p.skipString()
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	default:
		return p.syntax()
	}
}

// member passes over an object member: a key, its colon and its value.
func (p *parser) member() error {
	if p.peek() != '"' {
		return p.syntax()
	}
	if err := p.skipString(); err != nil {
		return err
	}
	p.ws()
	if p.next() != ':' {
		return p.syntax()
	}
	p.ws()
	return p.value()
}

// container passes over the array or object at p (open is '[' or '{'): it calls elem at each
// element (at each member's key, for an object) and checks the commas, the close and the
// nesting depth. elem starts after any whitespace.
func (p *parser) container(open, close byte, elem func() error) error {
	if p.next() != open {
		return p.syntax()
	}
	if p.depth++; p.depth > maxDepth {
		return p.invalid("nested too deeply")
	}
	p.ws()
	if p.peek() == close {
		p.i++
		p.depth--
		return nil
	}
	for {
		p.ws()
		if err := elem(); err != nil {
			return err
		}
		p.ws()
		switch p.next() {
		case ',':
		case close:
			p.depth--
			return nil
		default:
			return p.syntax()
		}
	}
}

// number passes over a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *parser) number() error {
	if p.peek() == '-' {
		p.i++
	}
	switch c := p.peek(); {
	case c == '0':
		p.i++
	case '1' <= c && c <= '9':
		p.digits()
	default:
		return p.syntax()
	}
	if p.peek() == '.' {
		p.i++
		if !isDigit(p.peek()) {
			return p.syntax()
		}
		p.digits()
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if !isDigit(p.peek()) {
			return p.syntax()
		}
		p.digits()
	}
	return nil
}

func (p *parser) digits() {
	for isDigit(p.peek()) {
		p.i++
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (p *parser) literal(lit string) error {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		return p.syntax()
	}
	p.i += len(lit)
	return nil
}

// foldEqual reports whether key equals the lower-case ASCII name under ASCII case folding or
// the Unicode simple folding encoding/json applies to keys (the Kelvin sign folds to k, the long
// s to s): a key that a common decoder might read as name counts.
func foldEqual(key, name string) bool {
	j := 0
	for _, r := range key {
		if j >= len(name) {
			return false
		}
		c := rune(name[j])
		j++
		switch {
		case r == c:
		case 'a' <= c && c <= 'z' && r == c-'a'+'A':
		case c == 'k' && r == '\u212a', c == 's' && r == '\u017f':
		default:
			return false
		}
	}
	return j == len(name)
}
