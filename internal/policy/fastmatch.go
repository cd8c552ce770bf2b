package policy

import (
	"regexp"
	"regexp/syntax"
	"strings"
)

// strMatcher answers regexp.MatchString for one pattern. Most parameter patterns in policies
// are anchored sequences of literals, ASCII character classes with repetition and alternations
// of literals (`^(monthly|quarterly|annual)$`, `^/reports/[a-z0-9_-]+\.pdf$`); for those the
// compiler builds a deterministic matcher that runs without the regexp engine. Every other
// pattern uses regexp (RE2: linear time). The fuzz test FuzzFastMatch checks both agree.
type strMatcher struct {
	re     *regexp.Regexp
	pieces []piece // nil: use re
	lit    string
	mode   litMode
}

type litMode uint8

const (
	litNone     litMode = iota
	litContains         // unanchored literal
	litPrefix           // ^literal
	litSuffix           // literal$
	litEqual            // ^literal$
)

type pieceKind uint8

const (
	pLit pieceKind = iota
	pClass
	pAlt
)

type piece struct {
	kind     pieceKind
	lit      string
	alts     []string
	class    *[256]bool
	min, max int // max < 0: unbounded
}

func newStrMatcher(src string) (*strMatcher, error) {
	re, err := regexp.Compile(src)
	if err != nil {
		return nil, err
	}
	m := &strMatcher{re: re}
	if tree, err := syntax.Parse(src, syntax.Perl); err == nil {
		m.plan(tree.Simplify())
	}
	return m, nil
}

// MatchString reports whether s contains a match of the pattern (regexp semantics).
func (m *strMatcher) MatchString(s string) bool {
	switch m.mode {
	case litContains:
		return strings.Contains(s, m.lit)
	case litPrefix:
		return strings.HasPrefix(s, m.lit)
	case litSuffix:
		return strings.HasSuffix(s, m.lit)
	case litEqual:
		return s == m.lit
	}
	if m.pieces != nil {
		return matchPieces(m.pieces, s)
	}
	return m.re.MatchString(s)
}

func (m *strMatcher) String() string { return m.re.String() }

func unwrapCapture(r *syntax.Regexp) *syntax.Regexp {
	for r.Op == syntax.OpCapture && len(r.Sub) == 1 {
		r = r.Sub[0]
	}
	return r
}

func plainLiteral(r *syntax.Regexp) (string, bool) {
	r = unwrapCapture(r)
	if r.Op == syntax.OpLiteral && r.Flags&syntax.FoldCase == 0 {
		return string(r.Rune), true
	}
	return "", false
}

func (m *strMatcher) plan(tree *syntax.Regexp) {
	tree = unwrapCapture(tree)
	var subs []*syntax.Regexp
	if tree.Op == syntax.OpConcat {
		subs = tree.Sub
	} else {
		subs = []*syntax.Regexp{tree}
	}
	begin := len(subs) > 0 && subs[0].Op == syntax.OpBeginText
	if begin {
		subs = subs[1:]
	}
	end := len(subs) > 0 && subs[len(subs)-1].Op == syntax.OpEndText
	if end {
		subs = subs[:len(subs)-1]
	}
	// A pure literal, anchored or not.
	if len(subs) == 1 {
		if lit, ok := plainLiteral(subs[0]); ok {
			m.lit = lit
			switch {
			case begin && end:
				m.mode = litEqual
			case begin:
				m.mode = litPrefix
			case end:
				m.mode = litSuffix
			default:
				m.mode = litContains
			}
			return
		}
	}
	if !begin || !end {
		return
	}
	var pieces []piece
	for _, r := range subs {
		p, ok := toPiece(unwrapCapture(r))
		if !ok {
			return
		}
		pieces = append(pieces, p)
	}
	if !deterministic(pieces) {
		return
	}
	m.pieces = pieces
}

func asciiClass(r *syntax.Regexp) (*[256]bool, bool) {
	var t [256]bool
	switch r.Op {
	case syntax.OpCharClass:
		for i := 0; i+1 < len(r.Rune); i += 2 {
			lo, hi := r.Rune[i], r.Rune[i+1]
			if hi >= 0x80 {
				return nil, false
			}
			for c := lo; c <= hi; c++ {
				t[c] = true
			}
		}
		return &t, true
	case syntax.OpLiteral:
		// Case-folded literals are left to regexp: (?i)k also matches the Kelvin sign.
		if len(r.Rune) == 1 && r.Rune[0] < 0x80 && r.Flags&syntax.FoldCase == 0 {
			t[r.Rune[0]] = true
			return &t, true
		}
	}
	return nil, false
}

func toPiece(r *syntax.Regexp) (piece, bool) {
	if lit, ok := plainLiteral(r); ok {
		return piece{kind: pLit, lit: lit}, true
	}
	if r.Op == syntax.OpAlternate {
		var alts []string
		for _, s := range r.Sub {
			lit, ok := plainLiteral(s)
			if !ok || lit == "" {
				return piece{}, false
			}
			alts = append(alts, lit)
		}
		// Deterministic only if no alternative is a prefix of another.
		for i, a := range alts {
			for j, b := range alts {
				if i != j && strings.HasPrefix(b, a) {
					return piece{}, false
				}
			}
		}
		return piece{kind: pAlt, alts: alts}, true
	}
	if t, ok := asciiClass(r); ok {
		return piece{kind: pClass, class: t, min: 1, max: 1}, true
	}
	var min, max int
	switch r.Op {
	case syntax.OpStar:
		min, max = 0, -1
	case syntax.OpPlus:
		min, max = 1, -1
	case syntax.OpQuest:
		min, max = 0, 1
	case syntax.OpRepeat:
		min, max = r.Min, r.Max
	default:
		return piece{}, false
	}
	if len(r.Sub) != 1 || r.Flags&syntax.NonGreedy != 0 {
		return piece{}, false
	}
	t, ok := asciiClass(r.Sub[0])
	if !ok {
		return piece{}, false
	}
	return piece{kind: pClass, class: t, min: min, max: max}, true
}

// firstBytes is the set of bytes a piece can start with.
func firstBytes(p piece) (t [256]bool) {
	switch p.kind {
	case pLit:
		if p.lit != "" {
			t[p.lit[0]] = true
		}
	case pAlt:
		for _, a := range p.alts {
			t[a[0]] = true
		}
	case pClass:
		t = *p.class
	}
	return t
}

// deterministic reports whether greedy left-to-right matching is exact: each variable-length
// class run must be followed by something that cannot start with a byte of the class (or by
// the end of the text), and no optional piece may be followed by one it could be confused with.
func deterministic(ps []piece) bool {
	for i, p := range ps {
		if p.kind != pClass || p.min == p.max {
			continue
		}
		if i+1 == len(ps) {
			continue
		}
		// Everything that may follow up to and including the first mandatory piece.
		for j := i + 1; j < len(ps); j++ {
			fb := firstBytes(ps[j])
			for c := range 256 {
				if fb[c] && p.class[c] {
					return false
				}
			}
			q := ps[j]
			if !(q.kind == pClass && q.min == 0) && !(q.kind == pLit && q.lit == "") {
				break
			}
		}
	}
	return true
}

func matchPieces(ps []piece, s string) bool {
	i := 0
	for _, p := range ps {
		switch p.kind {
		case pLit:
			if len(s)-i < len(p.lit) || s[i:i+len(p.lit)] != p.lit {
				return false
			}
			i += len(p.lit)
		case pAlt:
			hit := false
			for _, a := range p.alts {
				if len(s)-i >= len(a) && s[i:i+len(a)] == a {
					i += len(a)
					hit = true
					break
				}
			}
			if !hit {
				return false
			}
		case pClass:
			n := 0
			for i < len(s) && p.class[s[i]] && (p.max < 0 || n < p.max) {
				i++
				n++
			}
			if n < p.min {
				return false
			}
		}
	}
	return i == len(s)
}
