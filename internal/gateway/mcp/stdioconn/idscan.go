package stdioconn

import (
	"bytes"
	"encoding/json"
)

// maxIDLen bounds the id an oversized line's answer may quote.
const maxIDLen = 256

// idScan finds the top-level "id" of a JSON-RPC request as its bytes stream past, in constant
// memory, so that a line too long to decode can still be answered with its id (a client matches
// answers by id; one answered with id null waits for its own timeout). It reads the bytes once,
// tracking strings and nesting only; anything it cannot read plainly — a batch, an id key
// written with escapes, an id that is not a string or an integer, two ids — yields no id.
type idScan struct {
	depth    int
	inStr    bool
	esc      bool
	expect   bool // at depth 1, the next string is a key
	key      []byte
	keyBad   bool // the key being read is not a plain "id"
	isKey    bool // the string being read is a key
	idNext   bool // the last key was "id"; its value comes after the colon
	capture  bool // reading the id's value
	val      []byte
	ids      int
	overflow bool
	batch    bool
}

func (s *idScan) feed(b []byte) {
	for _, c := range b {
		if s.capture {
			switch {
			case !s.inStr && s.depth == 1 && (c == ',' || c == '}'):
				s.capture = false
			case !s.inStr && (c == '{' || c == '['), len(s.val) >= maxIDLen:
				s.overflow, s.capture = true, false // not a scalar, or too long
			default:
				s.val = append(s.val, c)
			}
		}
		if s.inStr {
			switch {
			case s.esc:
				s.esc = false
			case c == '\\':
				s.esc = true
				if s.isKey {
					s.keyBad = true
				}
			case c == '"':
				s.inStr = false
				if s.isKey {
					s.isKey = false
					s.idNext = !s.keyBad && string(s.key) == "id"
				}
			default:
				if s.isKey && !s.keyBad {
					if len(s.key) >= 2 {
						s.keyBad = true
					} else {
						s.key = append(s.key, c)
					}
				}
			}
			continue
		}
		switch c {
		case '"':
			s.inStr = true
			if s.depth == 1 && s.expect {
				s.isKey, s.keyBad, s.key, s.expect = true, false, s.key[:0], false
			}
		case '{', '[':
			if s.depth == 0 && c == '[' {
				s.batch = true
			}
			s.depth++
			s.expect = s.depth == 1
		case '}', ']':
			s.depth--
		case ',':
			s.expect = s.depth == 1
		case ':':
			if s.depth == 1 && s.idNext {
				s.idNext, s.capture, s.val = false, true, s.val[:0]
				s.ids++
			}
		}
	}
}

// id is the request's id as JSON (a string or an integer), or nil when it cannot be told.
func (s *idScan) id() json.RawMessage {
	if s.batch || s.ids != 1 || s.overflow {
		return nil
	}
	v := bytes.TrimSpace(s.val)
	if len(v) == 0 {
		return nil
	}
	var x any
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	if err := d.Decode(&x); err != nil || d.More() {
		return nil
	}
	switch x := x.(type) {
	case string:
	case json.Number:
		if _, err := x.Int64(); err != nil {
			return nil
		}
	default:
		return nil
	}
	return append(json.RawMessage(nil), v...)
}
