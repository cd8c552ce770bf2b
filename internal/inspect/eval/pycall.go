package main

import (
	"fmt"
	"strconv"
	"strings"
)

// parsePyCall parses a Python-style call such as `mv(source='a.pdf', destination='temp')`, as BFCL
// writes its multi-turn and exec ground truth, into the tool name and a JSON-ready argument map.
// Positional arguments are named arg0, arg1, ...
func parsePyCall(s string) (string, map[string]any, error) {
	p := &pyParser{s: strings.TrimSpace(s)}
	open := strings.IndexByte(p.s, '(')
	if open <= 0 || !strings.HasSuffix(p.s, ")") {
		return "", nil, fmt.Errorf("parse call %q: not name(args)", s)
	}
	name := strings.TrimSpace(p.s[:open])
	p.pos = open + 1
	args := map[string]any{}
	for i := 0; ; i++ {
		p.ws()
		if p.peek() == ')' {
			p.pos++
			break
		}
		key := fmt.Sprintf("arg%d", i)
		// keyword argument?
		j := p.pos
		for j < len(p.s) && (isIdent(p.s[j])) {
			j++
		}
		k := j
		for k < len(p.s) && p.s[k] == ' ' {
			k++
		}
		if j > p.pos && k < len(p.s) && p.s[k] == '=' && (k+1 >= len(p.s) || p.s[k+1] != '=') {
			key = p.s[p.pos:j]
			p.pos = k + 1
		}
		v, err := p.value()
		if err != nil {
			return "", nil, fmt.Errorf("parse call %q: %w", s, err)
		}
		args[key] = v
		p.ws()
		switch p.peek() {
		case ',':
			p.pos++
		case ')':
			p.pos++
			return name, args, nil
		default:
			return "", nil, fmt.Errorf("parse call %q: unexpected %q at %d", s, p.peek(), p.pos)
		}
	}
	return name, args, nil
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

type pyParser struct {
	s   string
	pos int
}

func (p *pyParser) peek() byte {
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

func (p *pyParser) ws() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\n' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func (p *pyParser) value() (any, error) {
	p.ws()
	switch c := p.peek(); {
	case c == '\'' || c == '"':
		return p.str()
	case c == '[' || c == '(':
		end := byte(']')
		if c == '(' {
			end = ')'
		}
		p.pos++
		var out []any
		for {
			p.ws()
			if p.peek() == end {
				p.pos++
				return out, nil
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			p.ws()
			if p.peek() == ',' {
				p.pos++
			}
		}
	case c == '{':
		p.pos++
		out := map[string]any{}
		for {
			p.ws()
			if p.peek() == '}' {
				p.pos++
				return out, nil
			}
			k, err := p.value()
			if err != nil {
				return nil, err
			}
			p.ws()
			if p.peek() != ':' {
				return nil, fmt.Errorf("expected ':' at %d", p.pos)
			}
			p.pos++
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = v
			p.ws()
			if p.peek() == ',' {
				p.pos++
			}
		}
	default:
		j := p.pos
		for j < len(p.s) && !strings.ContainsRune(",)]}:", rune(p.s[j])) {
			j++
		}
		tok := strings.TrimSpace(p.s[p.pos:j])
		if tok == "" {
			return nil, fmt.Errorf("empty value at %d", p.pos)
		}
		p.pos = j
		switch tok {
		case "True":
			return true, nil
		case "False":
			return false, nil
		case "None":
			return nil, nil
		}
		if f, err := strconv.ParseFloat(tok, 64); err == nil {
			return f, nil
		}
		return tok, nil // an expression or name: keep its text
	}
}

func (p *pyParser) str() (string, error) {
	q := p.s[p.pos]
	p.pos++
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case c == q:
			p.pos++
			return b.String(), nil
		case c == '\\' && p.pos+1 < len(p.s):
			n := p.s[p.pos+1]
			switch n {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(n)
			}
			p.pos += 2
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return "", fmt.Errorf("unterminated string")
}
