package ledger_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
)

// cleanLog builds a closed log of 1 startup + n decisions + 1 shutdown record with a
// checkpoint every 10 records, in a memory store the tests tamper with.
func cleanLog(t testing.TB, n int) (*env, *memory.Store) {
	t.Helper()
	ms := memory.New()
	e := newEnv(t, ms)
	l := e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 10 })
	for i := range n {
		mustAppend(t, l, decision(i))
	}
	mustClose(t, l)
	if rep := e.verify(t); !rep.Intact {
		t.Fatalf("clean log not intact: %+v", rep)
	}
	return e, ms
}

func signWith(t testing.TB, c ledger.Checkpoint, skey string) []byte {
	t.Helper()
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ledger.SignCheckpoint(c, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkpointOf(t testing.TB, msg []byte) ledger.Checkpoint {
	t.Helper()
	i := bytes.LastIndex(msg, []byte("\n\n"))
	c, err := ledger.ParseCheckpoint(string(msg[:i+1]))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerifyDetectsTampering(t *testing.T) {
	const n = 40 // records 0..41: startup, 40 decisions, shutdown; checkpoints at 1, 11, 21, 31, 41, 42
	tests := []struct {
		name    string
		tamper  func(t *testing.T, e *env, recs *[][]byte, cps *[]ledger.StoredCheckpoint)
		badSeq  uint64
		problem []string
	}{
		{"changed byte in a record body", func(t *testing.T, e *env, recs *[][]byte, _ *[]ledger.StoredCheckpoint) {
			r := (*recs)[17]
			i := bytes.Index(r, []byte("invoices"))
			r[i] = 'I'
		}, 17, []string{ledger.ProblemPrevMismatch}},
		{"changed byte in the last record (held only by the final checkpoint)", func(t *testing.T, e *env, recs *[][]byte, _ *[]ledger.StoredCheckpoint) {
			r := (*recs)[41]
			i := bytes.Index(r, []byte("shutdown"))
			r[i] = 'S'
		}, 41, []string{ledger.ProblemRootMismatch}},
		{"changed seq digit", func(t *testing.T, e *env, recs *[][]byte, _ *[]ledger.StoredCheckpoint) {
			(*recs)[5] = bytes.Replace((*recs)[5], []byte(`"seq":5,`), []byte(`"seq":6,`), 1)
		}, 5, []string{ledger.ProblemSeqMismatch}},
		{"deleted record", func(t *testing.T, e *env, recs *[][]byte, _ *[]ledger.StoredCheckpoint) {
			*recs = slices.Delete(*recs, 12, 13)
		}, 12, []string{ledger.ProblemSeqMismatch, ledger.ProblemMissingRecord}},
		{"inserted record", func(t *testing.T, e *env, recs *[][]byte, _ *[]ledger.StoredCheckpoint) {
			forged, _ := ledger.Encode(&ledger.Record{Seq: 12, Prev: hexLeaf((*recs)[11]), Kind: ledger.KindDecision, Decision: "allow"})
			*recs = slices.Insert(*recs, 12, forged)
		}, 13, []string{ledger.ProblemSeqMismatch}},
		{"duplicated record", func(t *testing.T, e *env, recs *[][]byte, _ *[]ledger.StoredCheckpoint) {
			*recs = slices.Insert(*recs, 21, slices.Clone((*recs)[20]))
		}, 21, []string{ledger.ProblemSeqMismatch}},
		{"reordered records", func(t *testing.T, e *env, recs *[][]byte, _ *[]ledger.StoredCheckpoint) {
			(*recs)[30], (*recs)[31] = (*recs)[31], (*recs)[30]
		}, 30, []string{ledger.ProblemSeqMismatch}},
		{"broken prev link", func(t *testing.T, e *env, recs *[][]byte, _ *[]ledger.StoredCheckpoint) {
			(*recs)[8] = bytes.Replace((*recs)[8], []byte(`"prev":"`), []byte(`"prev":"f`), 1)
			(*recs)[8] = append((*recs)[8][:len(`{"v":1,"seq":8,"prev":"`)+64], (*recs)[8][len(`{"v":1,"seq":8,"prev":"`)+65:]...)
		}, 8, []string{ledger.ProblemPrevMismatch}},
		{"rewritten suffix with a consistent chain", func(t *testing.T, e *env, recs *[][]byte, _ *[]ledger.StoredCheckpoint) {
			// Rewrite records 25.. with valid seq/prev links: only the signed roots can tell.
			for i := 25; i < len(*recs); i++ {
				r, _ := ledger.ParseRecord((*recs)[i])
				r.Decision = "deny"
				r.Prev = hexLeaf((*recs)[i-1])
				(*recs)[i], _ = ledger.Encode(r)
			}
		}, 30, []string{ledger.ProblemRootMismatch}},
		{"forged checkpoint (signed by another key)", func(t *testing.T, e *env, _ *[][]byte, cps *[]ledger.StoredCheckpoint) {
			skey, _, _ := note.GenerateKey(rand.Reader, "attacker")
			c := checkpointOf(t, (*cps)[1].Note)
			c.Origin = "attacker"
			(*cps)[1].Note = signWith(t, c, skey)
		}, 10, []string{ledger.ProblemForeignSignature}},
		{"foreign key with the log's own name", func(t *testing.T, e *env, _ *[][]byte, cps *[]ledger.StoredCheckpoint) {
			c := checkpointOf(t, (*cps)[2].Note)
			skey, _, _ := note.GenerateKey(rand.Reader, c.Origin)
			(*cps)[2].Note = signWith(t, c, skey)
		}, 20, []string{ledger.ProblemForeignSignature}},
		{"bad signature bytes", func(t *testing.T, e *env, _ *[][]byte, cps *[]ledger.StoredCheckpoint) {
			m := (*cps)[0].Note
			i := bytes.LastIndexByte(m[:len(m)-1], ' ') + 10
			m[i] ^= 'A' ^ 'B'
			if m[i] == m[i]^'A'^'B' {
				t.Fatal("no change")
			}
		}, 0, []string{ledger.ProblemBadSignature, ledger.ProblemMalformedCheckpoint, ledger.ProblemForeignSignature}},
		{"changed root in a checkpoint text", func(t *testing.T, e *env, _ *[][]byte, cps *[]ledger.StoredCheckpoint) {
			m := (*cps)[3].Note
			i := bytes.IndexByte(m, '\n')
			i = bytes.IndexByte(m[i+1:], '\n') + i + 2 // start of the root line
			if m[i] == 'A' {
				m[i] = 'B' // still base64: only the signature can tell
			} else {
				m[i] = 'A'
			}
		}, 30, []string{ledger.ProblemBadSignature, ledger.ProblemMalformedCheckpoint}},
		{"checkpoint sizes go down", func(t *testing.T, e *env, _ *[][]byte, cps *[]ledger.StoredCheckpoint) {
			*cps = append(*cps, (*cps)[1])
		}, 11, []string{ledger.ProblemCheckpointsDecrease}},
		{"inconsistent checkpoints (validly signed, another root)", func(t *testing.T, e *env, _ *[][]byte, cps *[]ledger.StoredCheckpoint) {
			c := checkpointOf(t, (*cps)[2].Note)
			c.Hash[0] ^= 0xff
			(*cps)[2].Note = signWith(t, c, e.keys.SignerKey)
		}, 20, []string{ledger.ProblemRootMismatch}},
		{"truncated below the latest checkpoint", func(t *testing.T, e *env, recs *[][]byte, _ *[]ledger.StoredCheckpoint) {
			*recs = (*recs)[:35]
		}, 35, []string{ledger.ProblemTruncated}},
		{"all checkpoints deleted and a record changed", func(t *testing.T, e *env, recs *[][]byte, cps *[]ledger.StoredCheckpoint) {
			*cps = nil
			(*recs)[3] = bytes.Replace((*recs)[3], []byte("allow"), []byte("ALLOW"), 1)
		}, 3, []string{ledger.ProblemPrevMismatch}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, ms := cleanLog(t, n)
			recs, cps := ms.Raw()
			tc.tamper(t, e, recs, cps)
			rep := e.verify(t)
			if rep.Intact || rep.FirstBadSeq == nil {
				t.Fatalf("tampered log reported intact: %+v", rep)
			}
			if *rep.FirstBadSeq != tc.badSeq || !slices.Contains(tc.problem, rep.Problem) {
				t.Errorf("first bad seq %d (%s: %s), want %d (%v)", *rep.FirstBadSeq, rep.Problem, rep.Reason, tc.badSeq, tc.problem)
			}
		})
	}
}

func hexLeaf(data []byte) string {
	h := ledger.LeafHash(data)
	return hex.EncodeToString(h[:])
}

func latestNote(t testing.TB, st ledger.Store) []byte {
	t.Helper()
	c, ok, err := st.LatestCheckpoint(context.Background())
	if err != nil || !ok {
		t.Fatalf("latest checkpoint: ok %v, %v", ok, err)
	}
	return c.Note
}

// Rollback: records AND their checkpoints are removed. The log is self-consistent, so local
// verification passes; an externally kept checkpoint catches it.
func TestVerifyDetectsRollbackWithTrustedCheckpoint(t *testing.T) {
	e, ms := cleanLog(t, 40)
	trusted := latestNote(t, e.st) // the auditor's copy, size 42
	recs, cps := ms.Raw()
	*recs = (*recs)[:30]
	*cps = (*cps)[:3] // sizes 10, 20, 30
	if rep := e.verify(t); !rep.Intact {
		t.Fatalf("rolled-back log without a trusted checkpoint: %+v (local verification cannot see a clean rollback)", rep)
	}
	rep := e.verify(t, trusted)
	if rep.Intact || rep.Problem != ledger.ProblemRollback || *rep.FirstBadSeq != 30 {
		t.Errorf("verify with the trusted checkpoint = %+v, want rollback at 30", rep)
	}
}

// Fork: the log is cut back and continued differently by someone holding the signing key.
func TestVerifyDetectsForkWithTrustedCheckpoint(t *testing.T) {
	e, ms := cleanLog(t, 40)
	trusted := latestNote(t, e.st) // size 42
	recs, cps := ms.Raw()
	*recs = (*recs)[:20]
	*cps = (*cps)[:2]
	l := e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 10 }) // recovery, startup
	for i := range 30 {
		r := decision(i)
		r.Decision = "deny"
		mustAppend(t, l, r)
	}
	mustClose(t, l)
	if rep := e.verify(t); !rep.Intact {
		t.Fatalf("forked log without a trusted checkpoint: %+v", rep)
	}
	rep := e.verify(t, trusted)
	if rep.Intact || rep.Problem != ledger.ProblemFork {
		t.Fatalf("verify with the trusted checkpoint = %+v, want fork", rep)
	}
	if *rep.FirstBadSeq != 41 {
		t.Errorf("first bad seq %d, want 41 (the trusted size - 1)", *rep.FirstBadSeq)
	}
}

func TestVerifyTrustedCheckpointOfTheSameLogPasses(t *testing.T) {
	e, _ := cleanLog(t, 25)
	trusted := latestNote(t, e.st)
	l := e.open(t, nil)
	for i := range 17 {
		mustAppend(t, l, decision(i))
	}
	mustClose(t, l)
	rep := e.verify(t, trusted)
	if !rep.Intact || len(rep.Trusted) != 1 {
		t.Errorf("grown log with its own earlier checkpoint: %+v, want intact", rep)
	}
}

// Any single-byte change to a closed log (every record and checkpoint covered) is detected.
func TestVerifyEverySingleByteChangeDetected(t *testing.T) {
	e, ms := cleanLog(t, 6)
	recs, cps := ms.Raw()
	for ri := range *recs {
		r := (*recs)[ri]
		for bi := range r {
			old := r[bi]
			r[bi] ^= 0x01
			if rep := e.verify(t); rep.Intact {
				t.Fatalf("record %d byte %d changed (%q→%q): reported intact", ri, bi, old, r[bi])
			}
			r[bi] = old
		}
	}
	for ci := range *cps {
		m := (*cps)[ci].Note
		for bi := range m {
			old := m[bi]
			m[bi] ^= 0x01
			rep, err := ledger.Verify(context.Background(), e.st, ledger.VerifyOptions{Keys: e.keys.Public})
			if err == nil && rep.Intact {
				t.Fatalf("checkpoint %d byte %d changed: reported intact", ci, bi)
			}
			m[bi] = old
		}
	}
	if rep := e.verify(t); !rep.Intact {
		t.Fatalf("restored log not intact: %+v", rep)
	}
}

func FuzzVerifyMutation(f *testing.F) {
	f.Add(uint16(3), uint16(10), byte(1), false)
	f.Add(uint16(0), uint16(0), byte(0x80), true)
	f.Add(uint16(7), uint16(200), byte(0xff), false)
	e, ms := cleanLog(f, 8)
	f.Fuzz(func(t *testing.T, which, pos uint16, x byte, checkpoint bool) {
		if x == 0 {
			return
		}
		recs, cps := ms.Raw()
		var b []byte
		if checkpoint {
			b = (*cps)[int(which)%len(*cps)].Note
		} else {
			b = (*recs)[int(which)%len(*recs)]
		}
		i := int(pos) % len(b)
		b[i] ^= x
		defer func() { b[i] ^= x }()
		rep, err := ledger.Verify(context.Background(), e.st, ledger.VerifyOptions{Keys: e.keys.Public})
		if err == nil && rep.Intact {
			t.Fatalf("mutation of byte %d (xor %#x) in %s %d reported intact", i, x, map[bool]string{true: "checkpoint", false: "record"}[checkpoint], which)
		}
	})
}
