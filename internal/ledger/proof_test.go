package ledger_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
)

// tlogTree is an independent RFC 6962 implementation (the Go checksum database's) over the same
// record bytes.
type tlogTree struct {
	hashes []tlog.Hash
}

func (tt *tlogTree) add(n int64, data []byte) error {
	hs, err := tlog.StoredHashes(n, data, tlog.HashReaderFunc(tt.read))
	if err != nil {
		return err
	}
	tt.hashes = append(tt.hashes, hs...)
	return nil
}

func (tt *tlogTree) read(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = tt.hashes[x]
	}
	return out, nil
}

func toTlog(hs [][]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		copy(out[i][:], h)
	}
	return out
}

func TestProofsAgreeWithTlog(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	for trial := range 40 {
		n := 1 + rng.IntN(300)
		if trial < 8 {
			n = []int{1, 2, 3, 4, 7, 8, 9, 64}[trial]
		}
		st := memory.New()
		tt := &tlogTree{}
		for i := range n {
			data := []byte(fmt.Sprintf("record %d of trial %d: %x", i, trial, rng.Uint64()))
			if err := st.Commit(ctx, []ledger.Entry{{Seq: uint64(i), Data: data}}, nil); err != nil {
				t.Fatal(err)
			}
			if err := tt.add(int64(i), data); err != nil {
				t.Fatal(err)
			}
		}
		for range 5 {
			size := uint64(1 + rng.IntN(n))
			idx := uint64(rng.IntN(int(size)))
			p, err := ledger.ProveInclusion(ctx, st, idx, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Verify(); err != nil {
				t.Fatalf("n=%d: inclusion of %d in %d does not verify: %v", n, idx, size, err)
			}
			th, err := tlog.TreeHash(int64(size), tlog.HashReaderFunc(tt.read))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(th[:], p.Root); diff != "" {
				t.Fatalf("n=%d size=%d: root differs from tlog (-tlog +ours):\n%s", n, size, diff)
			}
			tp, err := tlog.ProveRecord(int64(size), int64(idx), tlog.HashReaderFunc(tt.read))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]tlog.Hash(tp), toTlog(p.Hashes)); diff != "" {
				t.Fatalf("n=%d: inclusion proof of %d in %d differs from tlog's (-tlog +ours):\n%s", n, idx, size, diff)
			}
			var leaf tlog.Hash
			copy(leaf[:], p.LeafHash)
			if err := tlog.CheckRecord(toTlog(p.Hashes), int64(size), th, int64(idx), leaf); err != nil {
				t.Fatalf("tlog rejects our inclusion proof: %v", err)
			}
			// A proof for another leaf must not verify.
			p.LeafHash[0] ^= 1
			if p.Verify() == nil {
				t.Fatal("inclusion proof verified for a changed leaf")
			}

			old := uint64(rng.IntN(int(size) + 1))
			cp, err := ledger.ProveConsistency(ctx, st, old, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := cp.Verify(); err != nil {
				t.Fatalf("n=%d: consistency %d→%d does not verify: %v", n, old, size, err)
			}
			oh, err := tlog.TreeHash(int64(old), tlog.HashReaderFunc(tt.read))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(oh[:], cp.OldRoot); diff != "" {
				t.Fatalf("old root differs from tlog's:\n%s", diff)
			}
			if old > 0 && old < size {
				tp, err := tlog.ProveTree(int64(size), int64(old), tlog.HashReaderFunc(tt.read))
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff([]tlog.Hash(tp), toTlog(cp.Hashes)); diff != "" {
					t.Fatalf("consistency proof %d→%d differs from tlog's:\n%s", old, size, diff)
				}
				if err := tlog.CheckTree(toTlog(cp.Hashes), int64(size), th, int64(old), oh); err != nil {
					t.Fatalf("tlog rejects our consistency proof: %v", err)
				}
				cp.OldRoot[0] ^= 1
				if cp.Verify() == nil {
					t.Fatal("consistency proof verified for a changed old root")
				}
			}
		}
	}
}

func TestProofOutOfRange(t *testing.T) {
	st := memory.New()
	ctx := context.Background()
	st.Commit(ctx, []ledger.Entry{{Seq: 0, Data: []byte("a")}}, nil)
	if _, err := ledger.ProveInclusion(ctx, st, 1, 1); err == nil {
		t.Error("inclusion of index 1 in size 1 accepted")
	}
	if _, err := ledger.ProveInclusion(ctx, st, 0, 2); err == nil {
		t.Error("inclusion in a size beyond the log accepted")
	}
	if _, err := ledger.ProveConsistency(ctx, st, 2, 1); err == nil {
		t.Error("consistency from a larger to a smaller size accepted")
	}
}

// The signed checkpoint's root equals tlog's tree hash over the stored records.
func TestCheckpointRootAgreesWithTlog(t *testing.T) {
	e := newEnv(t, nil)
	l := e.open(t, nil)
	for i := range 37 {
		mustAppend(t, l, decision(i))
	}
	mustClose(t, l)
	tt := &tlogTree{}
	var n int64
	e.st.Scan(context.Background(), 0, func(en ledger.Entry) error {
		err := tt.add(n, en.Data)
		n++
		return err
	})
	th, err := tlog.TreeHash(n, tlog.HashReaderFunc(tt.read))
	if err != nil {
		t.Fatal(err)
	}
	c := checkpointOf(t, latestNote(t, e.st))
	if c.Size != uint64(n) || c.Hash != th {
		t.Errorf("checkpoint %d %x, tlog %d %x", c.Size, c.Hash, n, th)
	}
}
