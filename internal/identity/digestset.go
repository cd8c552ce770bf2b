package identity

import "math/bits"

// digestSet is the set of one expiry bucket's digests: an open-addressed table (linear probing,
// at most three quarters full) of digests D, whose zero value marks an empty slot, so a digest is
// never zero (wordDigest on its first word). A slot is the digest itself: 8 or 16 bytes, 10.7–21
// or 21–43 bytes an entry as the table doubles, and the lower figure once compacted. A Go map
// takes more: its slot pads a zero-size value to a word (8-byte digests: 16-byte slots, ≈ 38
// bytes an entry in all; 16-byte digests ≈ 42–56). A digest's first slot is its first word scaled
// to the table (multiply-shift), so the table may have any size, not only powers of two:
// compact sizes it to its entries.
type digestSet[D comparable] struct {
	slots     []D
	n         int
	compacted bool
	first     func(D) uint64 // the word that places a digest
}

// digestSetMin is a new set's table: buckets of a few entries stay small.
const digestSetMin = 16

func newDigestSet[D comparable](first func(D) uint64) *digestSet[D] {
	return &digestSet[D]{slots: make([]D, digestSetMin), first: first}
}

// wordDigest maps a hash to a first word a digestSet can hold: 0 becomes 1, which makes those two
// values collide with each other and nothing else.
func wordDigest(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}

// home is d's first slot.
func (s *digestSet[D]) home(d D) int {
	hi, _ := bits.Mul64(s.first(d), uint64(len(s.slots)))
	return int(hi)
}

func (s *digestSet[D]) has(d D) bool {
	var empty D
	for i := s.home(d); ; {
		switch s.slots[i] {
		case d:
			return true
		case empty:
			return false
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
}

// add puts d, which is not in the set, in it.
func (s *digestSet[D]) add(d D) {
	if (s.n+1)*4 > len(s.slots)*3 {
		s.resize(2 * len(s.slots))
	}
	s.put(d)
	s.n++
}

func (s *digestSet[D]) put(d D) {
	var empty D
	i := s.home(d)
	for s.slots[i] != empty {
		if i++; i == len(s.slots) {
			i = 0
		}
	}
	s.slots[i] = d
}

func (s *digestSet[D]) resize(size int) {
	var empty D
	old := s.slots
	s.slots = make([]D, size)
	for _, d := range old {
		if d != empty {
			s.put(d)
		}
	}
}

// compact shrinks the table to three quarters full, once: the store calls it when a bucket is no
// longer the newest, so it seldom takes more (entries arrive in the order of their expiry, but an
// outcome reported late still lands in its token's bucket, and grows it again if it must).
func (s *digestSet[D]) compact() {
	if s.compacted {
		return
	}
	s.compacted = true
	if size := max(s.n*4/3+1, digestSetMin); size < len(s.slots) {
		s.resize(size)
	}
}

func (s *digestSet[D]) len() int { return s.n }
