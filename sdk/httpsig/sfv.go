package httpsig

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file holds the subset of Structured Field Values (RFC 8941) that message signatures
// need: dictionaries whose members are inner lists of strings or byte sequences, each with
// parameters whose values are integers, strings, tokens, booleans or byte sequences.
// Parsing is strict: anything outside that subset is an error, never a best-effort guess,
// because a lenient parser in front of a signature check is where confusion attacks live.

// maxFieldLen bounds a header value the parser will look at; signatures are short.
const maxFieldLen = 8 << 10

var errSyntax = errors.New("structured field syntax error")

// param is one parameter of an item or inner list, in the order it appeared.
type param struct {
	Key   string
	Value any // int64, string (sf-string), token, bool or []byte
}

// token is an sf-token, kept apart from strings so that it re-serialises without quotes.
type token string

// member is one dictionary member: an inner list or a bare item, with its parameters.
type member struct {
	Key    string
	List   []string // inner-list items (strings only); nil when the member is a bare item
	IsList bool
	Item   any // bare item value when !IsList
	Params []param
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", errSyntax, what, p.i)
}

func (p *sfParser) skipSP() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// parseDictionary parses an sf-dictionary (RFC 8941 §4.2.2).
func parseDictionary(s string) ([]member, error) {
	if len(s) > maxFieldLen {
		return nil, fmt.Errorf("%w: field longer than %d bytes", errSyntax, maxFieldLen)
	}
	p := &sfParser{s: s}
	p.skipSP()
	var out []member
	seen := map[string]int{}
	for p.i < len(p.s) {
		key, err := p.parseKey()
		if err != nil {
			return nil, err
		}
		m := member{Key: key}
		if p.i < len(p.s) && p.s[p.i] == '=' {
			p.i++
			if p.i < len(p.s) && p.s[p.i] == '(' {
				m.IsList = true
				if m.List, err = p.parseInnerList(); err != nil {
					return nil, err
				}
			} else if m.Item, err = p.parseBareItem(); err != nil {
				return nil, err
			}
		} else {
			m.Item = true
		}
		if m.Params, err = p.parseParams(); err != nil {
			return nil, err
		}
		// RFC 8941: a repeated key overwrites the earlier value. For signatures that is an
		// ambiguity worth refusing outright.
		if _, dup := seen[key]; dup {
			return nil, fmt.Errorf("%w: duplicate dictionary key %q", errSyntax, key)
		}
		seen[key] = len(out)
		out = append(out, m)
		p.skipOWS()
		if p.i >= len(p.s) {
			return out, nil
		}
		if p.s[p.i] != ',' {
			return nil, p.fail("expected ','")
		}
		p.i++
		p.skipOWS()
		if p.i >= len(p.s) {
			return nil, p.fail("trailing ','")
		}
	}
	return out, nil
}

func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }

func (p *sfParser) parseKey() (string, error) {
	if p.i >= len(p.s) || !(isLCAlpha(p.s[p.i]) || p.s[p.i] == '*') {
		return "", p.fail("expected key")
	}
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*' {
			p.i++
			continue
		}
		break
	}
	return p.s[start:p.i], nil
}

func (p *sfParser) parseInnerList() ([]string, error) {
	p.i++ // '('
	list := []string{}
	for p.i < len(p.s) {
		p.skipSP()
		if p.i < len(p.s) && p.s[p.i] == ')' {
			p.i++
			return list, nil
		}
		item, err := p.parseBareItem()
		if err != nil {
			return nil, err
		}
		str, ok := item.(string)
		if !ok {
			return nil, p.fail("inner list item is not a string")
		}
		params, err := p.parseParams()
		if err != nil {
			return nil, err
		}
		if len(params) > 0 {
			// Component parameters (;sf, ;key, ;req, ...) are not supported: refuse rather
			// than compute a base the signer did not mean.
			return nil, p.fail("component parameters are not supported")
		}
		list = append(list, str)
		if p.i < len(p.s) && p.s[p.i] != ' ' && p.s[p.i] != ')' {
			return nil, p.fail("expected ' ' or ')' in inner list")
		}
	}
	return nil, p.fail("unterminated inner list")
}

func (p *sfParser) parseParams() ([]param, error) {
	var out []param
	for p.i < len(p.s) && p.s[p.i] == ';' {
		p.i++
		p.skipSP()
		key, err := p.parseKey()
		if err != nil {
			return nil, err
		}
		var v any = true
		if p.i < len(p.s) && p.s[p.i] == '=' {
			p.i++
			if v, err = p.parseBareItem(); err != nil {
				return nil, err
			}
		}
		for _, q := range out {
			if q.Key == key {
				return nil, fmt.Errorf("%w: duplicate parameter %q", errSyntax, key)
			}
		}
		out = append(out, param{Key: key, Value: v})
	}
	return out, nil
}

func (p *sfParser) parseBareItem() (any, error) {
	if p.i >= len(p.s) {
		return nil, p.fail("expected item")
	}
	c := p.s[p.i]
	switch {
	case c == '-' || isDigit(c):
		return p.parseInteger()
	case c == '"':
		return p.parseString()
	case c == ':':
		return p.parseBytes()
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			v := p.s[p.i+1] == '1'
			p.i += 2
			return v, nil
		}
		return nil, p.fail("bad boolean")
	case c == '*' || (c >= 'A' && c <= 'Z') || isLCAlpha(c):
		start := p.i
		p.i++
		for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
			p.i++
		}
		return token(p.s[start:p.i]), nil
	}
	return nil, p.fail("unexpected character")
}

func isTokenChar(c byte) bool {
	if c >= 0x21 && c <= 0x7e {
		return !strings.ContainsRune("\"(),;<=>?@[\\]{}", rune(c))
	}
	return false
}

func (p *sfParser) parseInteger() (int64, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	digits := 0
	for p.i < len(p.s) && isDigit(p.s[p.i]) {
		p.i++
		digits++
	}
	if digits == 0 || digits > 15 {
		return 0, p.fail("bad integer")
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		return 0, p.fail("decimals are not supported")
	}
	return strconv.ParseInt(p.s[start:p.i], 10, 64)
}

func (p *sfParser) parseString() (string, error) {
	p.i++ // '"'
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.i >= len(p.s) || (p.s[p.i] != '"' && p.s[p.i] != '\\') {
				return "", p.fail("bad escape")
			}
			b.WriteByte(p.s[p.i])
			p.i++
		case c == '"':
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", p.fail("non-printable character in string")
		default:
			b.WriteByte(c)
		}
	}
	return "", p.fail("unterminated string")
}

func (p *sfParser) parseBytes() ([]byte, error) {
	p.i++ // ':'
	end := strings.IndexByte(p.s[p.i:], ':')
	if end < 0 {
		return nil, p.fail("unterminated byte sequence")
	}
	enc := p.s[p.i : p.i+end]
	p.i += end + 1
	b, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: byte sequence: %v", errSyntax, err)
	}
	return b, nil
}

// serializeString writes an sf-string; callers guarantee printable ASCII (validated on input).
func serializeString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
}

func validSFString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func serializeItem(b *strings.Builder, v any) error {
	switch v := v.(type) {
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case string:
		if !validSFString(v) {
			return fmt.Errorf("%w: string with non-printable characters", errSyntax)
		}
		serializeString(b, v)
	case token:
		b.WriteString(string(v))
	case bool:
		if v {
			b.WriteString("?1")
		} else {
			b.WriteString("?0")
		}
	case []byte:
		b.WriteByte(':')
		b.WriteString(base64.StdEncoding.EncodeToString(v))
		b.WriteByte(':')
	default:
		return fmt.Errorf("%w: unsupported item type %T", errSyntax, v)
	}
	return nil
}

// serializeInnerList writes ("a" "b");k=v;... — the exact form that becomes @signature-params.
func serializeInnerList(b *strings.Builder, items []string, params []param) error {
	b.WriteByte('(')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(' ')
		}
		if !validSFString(it) {
			return fmt.Errorf("%w: component name with non-printable characters", errSyntax)
		}
		serializeString(b, it)
	}
	b.WriteByte(')')
	for _, p := range params {
		b.WriteByte(';')
		b.WriteString(p.Key)
		if v, ok := p.Value.(bool); ok && v {
			continue
		}
		b.WriteByte('=')
		if err := serializeItem(b, p.Value); err != nil {
			return err
		}
	}
	return nil
}
