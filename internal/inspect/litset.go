package inspect

import (
	"strings"
	"sync"
)

// litSet finds any of a fixed set of literal strings in one pass (an Aho–Corasick automaton
// compiled to a dense DFA over the bytes that occur in the literals). Go's regexp package has no
// DFA, and a loop of strings.Contains rescans the text once per literal; on a 64 KiB tool result
// both cost milliseconds, this costs one table lookup per byte. The automaton is built on first
// use, so a process that never inspects does not build the detectors' sets at start.
type litSet struct {
	once  sync.Once
	class [256]uint8 // byte → column; 0 is "a byte no literal contains"
	ncls  int
	// next is the transition table: next[state*ncls + class] is the next state times ncls (the
	// row where its transitions start), or -(state+1) for a state where a literal ends — a
	// match, so that the loop over the text tests one sign per byte and multiplies nothing.
	next    []int32
	out     []int32 // state → index+1 of a literal ending here (0: none)
	lits    []string
	minSize int
	starts  []byte // the distinct first bytes of the literals, when there are at most three
}

func newLitSet(lits ...string) *litSet {
	return &litSet{lits: lits}
}

func (ls *litSet) build() {
	lits := ls.lits
	ls.ncls, ls.minSize = 1, 1<<30
	for _, l := range lits {
		if l != "" && len(ls.starts) <= 3 && !strings.Contains(string(ls.starts), l[:1]) {
			ls.starts = append(ls.starts, l[0])
		}
	}
	if len(ls.starts) > 3 {
		ls.starts = nil
	}
	for _, l := range lits {
		ls.minSize = min(ls.minSize, len(l))
		for i := 0; i < len(l); i++ {
			if ls.class[l[i]] == 0 {
				ls.class[l[i]] = uint8(ls.ncls)
				ls.ncls++
			}
		}
	}
	// Trie.
	type node struct {
		child map[uint8]int32
		fail  int32
		out   int32
	}
	nodes := []node{{child: map[uint8]int32{}}}
	for li, l := range lits {
		s := int32(0)
		for i := 0; i < len(l); i++ {
			c := ls.class[l[i]]
			nx, ok := nodes[s].child[c]
			if !ok {
				nx = int32(len(nodes))
				nodes = append(nodes, node{child: map[uint8]int32{}})
				nodes[s].child[c] = nx
			}
			s = nx
		}
		if nodes[s].out == 0 {
			nodes[s].out = int32(li + 1)
		}
	}
	// Breadth-first failure links, then the dense transition table.
	ls.next = make([]int32, len(nodes)*ls.ncls)
	ls.out = make([]int32, len(nodes))
	queue := []int32{0}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if nodes[s].out == 0 && s != 0 {
			nodes[s].out = nodes[nodes[s].fail].out
		}
		ls.out[s] = nodes[s].out
		for c := 1; c < ls.ncls; c++ {
			if nx, ok := nodes[s].child[uint8(c)]; ok {
				if s != 0 {
					nodes[nx].fail = ls.next[int(nodes[s].fail)*ls.ncls+c]
				}
				ls.next[int(s)*ls.ncls+c] = nx
				queue = append(queue, nx)
			} else if s != 0 {
				ls.next[int(s)*ls.ncls+c] = ls.next[int(nodes[s].fail)*ls.ncls+c]
			}
		}
	}
	for i, t := range ls.next {
		if ls.out[t] != 0 {
			ls.next[i] = -(t + 1)
		} else {
			ls.next[i] = t * int32(ls.ncls)
		}
	}
}

// find returns the end offset and the literal of the first match in s.
func (ls *litSet) find(s string) (end int, lit string, ok bool) {
	ls.once.Do(ls.build)
	if len(s) < ls.minSize {
		return 0, "", false
	}
	next, class := ls.next, &ls.class
	row := int32(0)
	if ls.starts == nil {
		for i := 0; i < len(s); i++ {
			if row = next[int(row)+int(class[s[i]])]; row < 0 {
				return i + 1, ls.lits[ls.out[-row-1]-1], true
			}
		}
		return 0, "", false
	}
	for i := 0; i < len(s); i++ {
		if row == 0 {
			// At the root only a first byte can start a match: jump to the next one.
			j := nextStart(s[i:], ls.starts)
			if j < 0 {
				return 0, "", false
			}
			i += j
		}
		if row = next[int(row)+int(class[s[i]])]; row < 0 {
			return i + 1, ls.lits[ls.out[-row-1]-1], true
		}
	}
	return 0, "", false
}

// nextStart returns the offset of the first byte of s that is one of starts, or -1.
func nextStart(s string, starts []byte) int {
	best := -1
	for _, c := range starts {
		lim := s
		if best >= 0 {
			lim = s[:best]
		}
		if j := strings.IndexByte(lim, c); j >= 0 {
			best = j
		}
	}
	return best
}

// contains reports whether s contains any of the literals.
func (ls *litSet) contains(s string) bool {
	_, _, ok := ls.find(s)
	return ok
}
