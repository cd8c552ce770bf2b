package identity

import (
	"math/rand/v2"
	"testing"
)

// wordSet agrees with a map on every member and non-member through its growth, including digests
// that share their low bits (one probe chain) and the largest value; wordDigest never yields the
// empty marker.
func TestWordSet(t *testing.T) {
	s := newWordSet()
	ref := map[uint64]bool{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20_000 {
		d := wordDigest(r.Uint64())
		if i%7 == 0 {
			d = wordDigest(1<<63 | uint64(i)) // high bits alike: one long chain, wrapping at the end
		}
		if ref[d] {
			continue
		}
		if s.has(d) {
			t.Fatalf("%x present before it was added", d)
		}
		s.add(d)
		ref[d] = true
	}
	s.add(^uint64(0))
	ref[^uint64(0)] = true
	if s.len() != len(ref) {
		t.Fatalf("len %d, want %d", s.len(), len(ref))
	}
	for d := range ref {
		if !s.has(d) {
			t.Fatalf("%x lost", d)
		}
	}
	for range 20_000 {
		if d := wordDigest(r.Uint64()); !ref[d] && s.has(d) {
			t.Fatalf("%x present, never added", d)
		}
	}
	if (s.len()+1)*4 > len(s.slots)*3 {
		t.Errorf("%d entries in %d slots: over three quarters full", s.len(), len(s.slots))
	}
	// Compacted, the table holds the same members in fewer slots, still at most three quarters
	// full; and it takes more after.
	slots := len(s.slots)
	s.compact()
	if len(s.slots) >= slots || (s.len()+1)*4 > len(s.slots)*3+4 {
		t.Errorf("compacted: %d entries in %d slots (was %d)", s.len(), len(s.slots), slots)
	}
	for d := range ref {
		if !s.has(d) {
			t.Fatalf("%x lost in compaction", d)
		}
	}
	for range 5_000 {
		if d := wordDigest(r.Uint64()); !ref[d] {
			s.add(d)
			ref[d] = true
		}
	}
	for d := range ref {
		if !s.has(d) {
			t.Fatalf("%x lost after compaction", d)
		}
	}
	if wordDigest(0) == 0 {
		t.Error("wordDigest(0) is the empty marker")
	}
}
