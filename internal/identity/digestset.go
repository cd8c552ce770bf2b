package identity

import "math/bits"

// digestSet is the set of one expiry bucket's digests.
type digestSet[D comparable] interface {
	has(d D) bool
	add(d D) // d is not in the set
	len() int
}

// mapSet is a digestSet on a Go map: for 16-byte digests, whose slots a map packs well.
type mapSet[D comparable] map[D]struct{}

func (m mapSet[D]) has(d D) bool {
	_, ok := m[d]
	return ok
}

func (m mapSet[D]) add(d D)  { m[d] = struct{}{} }
func (m mapSet[D]) len() int { return len(m) }

// wordSet is a digestSet of 8-byte digests in one open-addressed table (linear probing, at most
// three quarters full): 8 bytes a slot, 10.7–21 bytes an entry as the table doubles, and 10.7
// once compacted. A Go map of uint64 to struct{} takes twice the slot (a zero-size last field is
// padded to a word), ≈ 38 bytes an entry in all. 0 marks an empty slot, so digests are never 0
// (wordDigest). A digest's first slot is its high bits scaled to the table (multiply-shift), so
// the table may have any size, not only powers of two: compact sizes it to its entries.
type wordSet struct {
	slots     []uint64
	n         int
	compacted bool
}

// wordSetMin is a new set's table: buckets of a few entries stay small.
const wordSetMin = 16

func newWordSet() *wordSet { return &wordSet{slots: make([]uint64, wordSetMin)} }

// wordDigest maps a hash to a digest wordSet can hold: 0 becomes 1, which makes those two
// values collide with each other and nothing else.
func wordDigest(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}

// home is d's first slot.
func (s *wordSet) home(d uint64) int {
	hi, _ := bits.Mul64(d, uint64(len(s.slots)))
	return int(hi)
}

func (s *wordSet) has(d uint64) bool {
	for i := s.home(d); ; {
		switch s.slots[i] {
		case d:
			return true
		case 0:
			return false
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
}

func (s *wordSet) add(d uint64) {
	if (s.n+1)*4 > len(s.slots)*3 {
		s.grow()
	}
	s.put(d)
	s.n++
}

func (s *wordSet) put(d uint64) {
	i := s.home(d)
	for s.slots[i] != 0 {
		if i++; i == len(s.slots) {
			i = 0
		}
	}
	s.slots[i] = d
}

func (s *wordSet) grow() { s.resize(2 * len(s.slots)) }

func (s *wordSet) resize(size int) {
	old := s.slots
	s.slots = make([]uint64, size)
	for _, d := range old {
		if d != 0 {
			s.put(d)
		}
	}
}

// compact shrinks the table to three quarters full, once: the store calls it when a bucket is no
// longer the newest, so it seldom takes more (claims arrive in the order of their expiry, but an
// outcome reported late still lands in its token's bucket, and grows it again if it must).
func (s *wordSet) compact() {
	if s.compacted {
		return
	}
	s.compacted = true
	if size := max(s.n*4/3+1, wordSetMin); size < len(s.slots) {
		s.resize(size)
	}
}

func (s *wordSet) len() int { return s.n }
