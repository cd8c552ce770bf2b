package identity

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
// three quarters full): 8 bytes a slot, 10.7–21 bytes an entry as the table doubles. A Go map of
// uint64 to struct{} takes twice the slot (a zero-size last field is padded to a word), ≈ 38 bytes
// an entry in all. 0 marks an empty slot, so digests are never 0 (wordDigest).
type wordSet struct {
	slots []uint64
	n     int
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

func (s *wordSet) has(d uint64) bool {
	mask := uint64(len(s.slots) - 1)
	for i := d & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case d:
			return true
		case 0:
			return false
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
	mask := uint64(len(s.slots) - 1)
	i := d & mask
	for s.slots[i] != 0 {
		i = (i + 1) & mask
	}
	s.slots[i] = d
}

func (s *wordSet) grow() {
	old := s.slots
	s.slots = make([]uint64, 2*len(old))
	for _, d := range old {
		if d != 0 {
			s.put(d)
		}
	}
}

func (s *wordSet) len() int { return s.n }
