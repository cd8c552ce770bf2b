package ledger

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"testing"
)

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A commit far larger than the byte bound keeps only the records that fit, and only their
// bytes stay alive: not the whole commit's behind the few records kept.
func TestRecentLargeCommitHoldsOnlyWhatItKeeps(t *testing.T) {
	const (
		maxBytes = 1 << 20
		records  = 1000
		size     = 32 << 10 // 1000 × 32 KiB: a commit of ≈ 31 MiB, 32 times the bound
	)
	r := NewRecent(DefaultRecentRecords, maxBytes)
	before := heapInUse()
	func() {
		entries := make([]Entry, records)
		for i := range entries {
			entries[i] = Entry{Seq: uint64(i), Data: bytes.Repeat([]byte{byte(i)}, size)}
		}
		r.add(entries)
	}()
	held := int64(heapInUse()) - int64(before)
	first, end := r.Span()
	if kept := end - first; kept != maxBytes/size || end != records {
		t.Fatalf("kept seqs [%d, %d), want the last %d", first, end, maxBytes/size)
	}
	// The bound allows up to twice maxBytes held; the old copy of the whole commit held 31 MiB.
	if held > 2*maxBytes {
		t.Fatalf("after one commit of %d MiB, %d KiB of heap stay alive; the bound is %d KiB",
			records*size>>20, held>>10, 2*maxBytes>>10)
	}
	for _, e := range r.read(nil, first, int(end-first)) {
		if len(e.Data) != size || e.Data[0] != byte(e.Seq) || e.Data[size-1] != byte(e.Seq) {
			t.Fatalf("seq %d holds the wrong bytes", e.Seq)
		}
	}
	runtime.KeepAlive(r)
}

// modelRecent is Recent as a list, record by record, with no sharing of bytes: what add must
// keep whatever the commit's shape.
type modelRecent struct {
	maxRecords, maxBytes int
	held                 []Entry
}

func (m *modelRecent) add(entries []Entry) {
	for _, e := range entries {
		if n := len(m.held); n > 0 && e.Seq != m.held[n-1].Seq+1 {
			m.held = nil
		}
		if len(e.Data) > m.maxBytes {
			m.held = nil
			continue
		}
		m.held = append(m.held, Entry{Seq: e.Seq, Data: bytes.Clone(e.Data)})
		for {
			total := 0
			for _, h := range m.held {
				total += len(h.Data)
			}
			if len(m.held) <= m.maxRecords && total <= m.maxBytes {
				break
			}
			m.held = m.held[1:]
		}
	}
}

// add keeps the same records as the record-by-record model for commits of any shape: gaps in
// seq (another writer's records), records over the byte bound, commits over either bound.
func TestRecentAddMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		maxRecords, maxBytes := 1+rng.IntN(8), 1+rng.IntN(64)
		r := NewRecent(maxRecords, maxBytes)
		m := &modelRecent{maxRecords: maxRecords, maxBytes: maxBytes}
		seq := uint64(rng.IntN(5))
		for range 20 {
			entries := make([]Entry, 1+rng.IntN(12))
			for i := range entries {
				if rng.IntN(10) == 0 {
					seq += 1 + uint64(rng.IntN(3)) // a gap
				}
				data := make([]byte, rng.IntN(maxBytes*3/2+2))
				for j := range data {
					data[j] = byte(rng.Uint32())
				}
				entries[i] = Entry{Seq: seq, Data: data}
				seq++
			}
			r.add(entries)
			m.add(entries)
			first, end := r.Span()
			got := r.read(nil, first, int(end-first))
			if len(m.held) == 0 {
				if end != first {
					t.Fatalf("round %d: holds [%d, %d), the model holds nothing", round, first, end)
				}
				continue
			}
			if len(got) != len(m.held) {
				t.Fatalf("round %d: holds %d records [%d, %d), the model %d from %d",
					round, len(got), first, end, len(m.held), m.held[0].Seq)
			}
			for i := range got {
				if got[i].Seq != m.held[i].Seq || !bytes.Equal(got[i].Data, m.held[i].Data) {
					t.Fatalf("round %d: record %d is seq %d, the model's seq %d (or its bytes differ)",
						round, i, got[i].Seq, m.held[i].Seq)
				}
			}
		}
	}
}
