package ledger_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// archiveEnv is a SQLite ledger with a checkpoint every 10 records and an archive directory.
type archiveEnv struct {
	*env
	db      *sqlite.Ledger
	archive string
}

func newArchiveEnv(t *testing.T, n int) *archiveEnv {
	t.Helper()
	dbDir := t.TempDir()
	st, err := sqlite.OpenLedger(filepath.Join(dbDir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &archiveEnv{env: newEnv(t, st), db: st, archive: filepath.Join(dbDir, "archive")}
	e.appendN(t, 0, n)
	return e
}

// appendN runs the ledger once: startup, n decisions, shutdown (checkpoints every 10 records).
func (e *archiveEnv) appendN(t *testing.T, from, n int) {
	t.Helper()
	l := e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 10 })
	for i := range n {
		mustAppend(t, l, decision(from+i))
	}
	mustClose(t, l)
}

func (e *archiveEnv) vopts() ledger.VerifyOptions {
	return ledger.VerifyOptions{Keys: e.keys.Public, CheckpointRecords: 10}
}

func (e *archiveEnv) archiveTo(t *testing.T, to uint64) ledger.ArchiveResult {
	t.Helper()
	res, err := ledger.ArchiveAndPrune(context.Background(), e.st, e.archive, to, e.vopts())
	if err != nil {
		t.Fatalf("archive to %d: %v", to, err)
	}
	return res
}

func (e *archiveEnv) verifyAll(t *testing.T) ledger.ArchivedReport {
	t.Helper()
	as, err := ledger.ListArchives(e.archive)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ledger.VerifyArchived(context.Background(), as, e.st, e.vopts())
	if err != nil {
		t.Fatalf("verify archived: %v", err)
	}
	return rep
}

func (e *archiveEnv) verifyLive(t *testing.T) ledger.Report {
	t.Helper()
	rep, err := ledger.Verify(context.Background(), e.st, e.vopts())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}

func TestArchivePruneVerifyAndContinue(t *testing.T) {
	ctx := context.Background()
	e := newArchiveEnv(t, 95) // startup + 95 + shutdown = 97 records
	res := e.archiveTo(t, 41) // checkpoints at 1, 11, 21, …, 91 and 97
	if res.From != 0 || res.To != 41 || !res.Verified || res.Resumed {
		t.Fatalf("first archive: %+v", res)
	}
	e.archiveTo(t, 81)
	if n := len(records(t, e.st)); n != 16 {
		t.Fatalf("%d records left in the live store, want 16", n)
	}
	live := e.verifyLive(t)
	if !live.Intact || live.ArchivedRecords != 81 || live.Records != 97 || live.RecordsChecked != 16 {
		t.Fatalf("live log alone: %+v", live)
	}
	all := e.verifyAll(t)
	if !all.Intact || len(all.Archives) != 2 || all.Log.RecordsChecked != 97 {
		t.Fatalf("archives + live: %+v", all)
	}

	// The ledger restarts on the pruned store and keeps appending; everything still verifies.
	e.appendN(t, 95, 30)
	if rep := e.verifyLive(t); !rep.Intact {
		t.Fatalf("after a restart on the pruned store: %+v", rep)
	}
	if rep := e.verifyAll(t); !rep.Intact {
		t.Fatalf("archives + live after a restart: %+v", rep)
	}

	// Inclusion proofs: archived records from their archive, live ones from the live log.
	if _, err := ledger.ProveInclusion(ctx, e.st, 5, 120); !errors.Is(err, ledger.ErrArchived) {
		t.Fatalf("proof of an archived record from the live log: %v, want ErrArchived", err)
	}
	as, err := ledger.ListArchives(e.archive)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		a   *ledger.Archive
		seq uint64
	}{{as[0], 0}, {as[0], 40}, {as[1], 41}, {as[1], 80}} {
		p, err := ledger.ProveInclusion(ctx, c.a, c.seq, c.a.To())
		if err != nil {
			t.Fatalf("prove %d from %s: %v", c.seq, c.a.Path, err)
		}
		if err := p.Verify(); err != nil {
			t.Fatalf("proof of %d: %v", c.seq, err)
		}
	}
	cp, _, _ := e.st.LatestCheckpoint(ctx)
	p, err := ledger.ProveInclusion(ctx, e.st, 82, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := ledger.OpenCheckpoint(cp.Note, mustVerifiers(t, e.env))
	if err != nil || !bytes.Equal(p.Root, c.Hash[:]) || p.Verify() != nil {
		t.Fatalf("live proof of 82 against the latest checkpoint: %v", err)
	}
	cons, err := ledger.ProveConsistency(ctx, e.st, 81, cp.Size)
	if err != nil || cons.Verify() != nil {
		t.Fatalf("consistency from the base: %v", err)
	}
}

func mustVerifiers(t *testing.T, e *env) ledgerVerifiers {
	t.Helper()
	vs, _, err := e.keys.Verifiers()
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// A log pruned up to its newest checkpoint has no record left: the next start takes the last
// record's hash from the base.
func TestArchiveEverythingThenRestart(t *testing.T) {
	e := newArchiveEnv(t, 18) // 20 records, checkpoints at 10 and 20
	if n, _ := e.st.Size(context.Background()); n != 20 {
		t.Fatalf("size %d, want 20", n)
	}
	e.archiveTo(t, 20)
	if n := len(records(t, e.st)); n != 0 {
		t.Fatalf("%d records left", n)
	}
	e.appendN(t, 18, 3)
	rs := records(t, e.st)
	if len(rs) != 5 || rs[0].Seq != 20 || rs[0].Kind != ledger.KindStartup {
		t.Fatalf("after restart: %d records, first %+v (a clean stop needs no recovery record)", len(rs), rs[0])
	}
	if rep := e.verifyAll(t); !rep.Intact {
		t.Fatalf("%+v", rep)
	}
}

// rewriteArchive changes an archive file's lines with fn and compresses it again.
func rewriteArchive(t *testing.T, path string, fn func(lines [][]byte) [][]byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	f.Close()
	lines = fn(lines)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, l := range lines {
		zw.Write(l)
		zw.Write([]byte("\n"))
	}
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantBroken(t *testing.T, what string, intact bool, problem string, want ...string) {
	t.Helper()
	if intact {
		t.Fatalf("%s: verification passed", what)
	}
	for _, w := range want {
		if problem == w {
			return
		}
	}
	t.Fatalf("%s: problem %q, want one of %q", what, problem, want)
}

func TestArchiveTamperDetected(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*archiveEnv, []*ledger.Archive) {
		e := newArchiveEnv(t, 58)                 // 60 records
		for _, to := range []uint64{21, 41, 51} { // checkpoints at 1, 11, …, 51, 60
			e.archiveTo(t, to)
		}
		if rep := e.verifyAll(t); !rep.Intact {
			t.Fatalf("before tampering: %+v", rep)
		}
		as, err := ledger.ListArchives(e.archive)
		if err != nil || len(as) != 3 {
			t.Fatalf("archives: %d %v", len(as), err)
		}
		return e, as
	}

	t.Run("RecordEditedInArchive", func(t *testing.T) {
		e, as := setup(t)
		rewriteArchive(t, as[1].Path, func(lines [][]byte) [][]byte {
			lines[5] = bytes.Replace(lines[5], []byte("invoices"), []byte("invoiceZ"), 1) // record 25
			return lines
		})
		a, err := ledger.OpenArchive(as[1].Path)
		if err != nil {
			t.Fatal(err)
		}
		ar, err := ledger.VerifyArchive(ctx, a, e.vopts())
		if err != nil {
			t.Fatal(err)
		}
		wantBroken(t, "the archive alone", ar.Report.Intact, ar.Report.Problem, ledger.ProblemPrevMismatch)
		if *ar.Report.FirstBadSeq != 25 {
			t.Fatalf("first bad seq %d, want 25", *ar.Report.FirstBadSeq)
		}
		rep := e.verifyAll(t)
		wantBroken(t, "archives + live", rep.Intact, rep.Log.Problem, ledger.ProblemPrevMismatch)
		// Inclusion proofs from the edited archive do not match its signed end.
		if p, err := ledger.ProveInclusion(ctx, a, 25, a.To()); err == nil {
			end, _, _ := a.LatestCheckpoint(ctx)
			c, _, _ := ledger.OpenCheckpoint(end.Note, mustVerifiers(t, e.env))
			if bytes.Equal(p.Root, c.Hash[:]) {
				t.Fatal("a proof from the edited archive matches the signed root")
			}
		}
	})

	t.Run("ArchiveDeletedFromTheMiddle", func(t *testing.T) {
		e, as := setup(t)
		if err := os.Remove(as[1].Path); err != nil {
			t.Fatal(err)
		}
		rep := e.verifyAll(t)
		wantBroken(t, "archives + live", rep.Intact, rep.Log.Problem, ledger.ProblemMissingRecord)
		if *rep.Log.FirstBadSeq != 21 {
			t.Fatalf("first bad seq %d, want 21", *rep.Log.FirstBadSeq)
		}
	})

	t.Run("LastArchiveDeleted", func(t *testing.T) {
		e, as := setup(t)
		if err := os.Remove(as[2].Path); err != nil {
			t.Fatal(err)
		}
		rep := e.verifyAll(t)
		wantBroken(t, "archives + live", rep.Intact, rep.Log.Problem, ledger.ProblemMissingRecord, ledger.ProblemMissingArchive)
	})

	t.Run("ArchiveSwappedForAnotherLedgers", func(t *testing.T) {
		e, as := setup(t)
		other := newArchiveEnv(t, 58)
		for _, to := range []uint64{21, 41} {
			other.archiveTo(t, to)
		}
		oas, err := ledger.ListArchives(other.archive)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(oas[1].Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(as[1].Path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		rep := e.verifyAll(t)
		if rep.Intact || rep.Archives[1].Report.Intact {
			t.Fatalf("a foreign archive passed: %+v", rep)
		}
		wantBroken(t, "the foreign archive alone", rep.Archives[1].Report.Intact, rep.Archives[1].Report.Problem,
			ledger.ProblemBaseMismatch, ledger.ProblemForeignSignature)
		wantBroken(t, "archives + live", rep.Log.Intact, rep.Log.Problem,
			ledger.ProblemBaseMismatch, ledger.ProblemForeignSignature, ledger.ProblemPrevMismatch)
	})

	t.Run("FirstLiveRecordAltered", func(t *testing.T) {
		e, _ := setup(t)
		if _, err := e.db.DB().Exec("UPDATE ledger_records SET data = replace(data, 'invoices', 'invoiceZ') WHERE seq = 51"); err != nil {
			t.Fatal(err)
		}
		rep := e.verifyLive(t)
		wantBroken(t, "the live log alone", rep.Intact, rep.Problem, ledger.ProblemPrevMismatch)
		if *rep.FirstBadSeq != 51 {
			t.Fatalf("first bad seq %d, want 51", *rep.FirstBadSeq)
		}
		all := e.verifyAll(t)
		wantBroken(t, "archives + live", all.Intact, all.Log.Problem, ledger.ProblemPrevMismatch)
	})

	t.Run("FirstLiveRecordPrevAltered", func(t *testing.T) {
		e, _ := setup(t)
		// Its prev points at another record: only the base's last record (checked by its
		// inclusion proof) tells.
		if _, err := e.db.DB().Exec("UPDATE ledger_records SET data = (SELECT data FROM ledger_records WHERE seq = 52) WHERE seq = 51"); err != nil {
			t.Fatal(err)
		}
		rep := e.verifyLive(t)
		wantBroken(t, "the live log alone", rep.Intact, rep.Problem, ledger.ProblemSeqMismatch, ledger.ProblemPrevMismatch)
	})

	t.Run("CompactRangeAltered", func(t *testing.T) {
		e, _ := setup(t)
		_, raw, _, err := e.st.(ledger.Pruner).Base(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var b ledger.Base
		if err := jsonUnmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		b.Frontier[0] ^= 1
		nb := jsonMarshal(t, b)
		if _, err := e.db.DB().Exec("UPDATE ledger_base SET base = ?", nb); err != nil {
			t.Fatal(err)
		}
		rep := e.verifyLive(t)
		wantBroken(t, "the live log alone", rep.Intact, rep.Problem, ledger.ProblemBaseMismatch)
		all := e.verifyAll(t)
		wantBroken(t, "archives + live", all.Intact, all.Log.Problem, ledger.ProblemBaseMismatch)
		// The gateway refuses to continue from it.
		o := e.options(t)
		o.CheckpointRecords = 10
		if _, err := ledger.Open(ctx, o); err == nil {
			t.Fatal("the ledger opened on an altered compact range")
		}
	})

	t.Run("BaseLastRecordAltered", func(t *testing.T) {
		e, _ := setup(t)
		_, raw, _, _ := e.st.(ledger.Pruner).Base(ctx)
		var b ledger.Base
		if err := jsonUnmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		b.Last = bytes.Replace(b.Last, []byte("invoices"), []byte("invoiceZ"), 1)
		if _, err := e.db.DB().Exec("UPDATE ledger_base SET base = ?", jsonMarshal(t, b)); err != nil {
			t.Fatal(err)
		}
		rep := e.verifyLive(t)
		wantBroken(t, "the live log alone", rep.Intact, rep.Problem, ledger.ProblemBaseMismatch)
	})

	t.Run("ArchiveStartAltered", func(t *testing.T) {
		e, as := setup(t)
		rewriteArchive(t, as[2].Path, func(lines [][]byte) [][]byte {
			// The start's compact range, base64 in the header: change one character of it.
			i := bytes.Index(lines[0], []byte(`"frontier":"`)) + len(`"frontier":"`)
			if lines[0][i] == 'A' {
				lines[0][i] = 'B'
			} else {
				lines[0][i] = 'A'
			}
			return lines
		})
		rep := e.verifyAll(t)
		wantBroken(t, "the archive alone", rep.Archives[2].Report.Intact, rep.Archives[2].Report.Problem, ledger.ProblemBaseMismatch)
	})
}

// An archive written and fsynced but not pruned (the process was killed between the two):
// the next run verifies that file and prunes, without writing another.
func TestArchiveInterruptedBeforePruneIsCompleted(t *testing.T) {
	ctx := context.Background()
	e := newArchiveEnv(t, 38) // 40 records, checkpoints at 1, 11, 21, 31, 40
	if err := os.MkdirAll(e.archive, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.WriteArchive(ctx, e.st, e.archive, 21); err != nil {
		t.Fatal(err)
	}
	if n := len(records(t, e.st)); n != 40 {
		t.Fatalf("writing the archive pruned: %d records left", n)
	}
	res := e.archiveTo(t, 31) // the interrupted run's file wins: it ends at 21
	if !res.Resumed || res.To != 21 {
		t.Fatalf("resume: %+v", res)
	}
	res = e.archiveTo(t, 21) // and again: nothing to do
	if res.To != 0 || res.Archive != "" {
		t.Fatalf("a second run did something: %+v", res)
	}
	as, _ := ledger.ListArchives(e.archive)
	if len(as) != 1 {
		t.Fatalf("%d archive files, want 1", len(as))
	}
	if rep := e.verifyAll(t); !rep.Intact {
		t.Fatalf("%+v", rep)
	}
	// A leftover that does not verify is kept, and nothing is pruned over it.
	a, err := ledger.WriteArchive(ctx, e.st, e.archive, 31)
	if err != nil {
		t.Fatal(err)
	}
	rewriteArchive(t, a.Path, func(lines [][]byte) [][]byte {
		lines[3] = bytes.Replace(lines[3], []byte("invoices"), []byte("invoiceZ"), 1)
		return lines
	})
	if _, err := ledger.ArchiveAndPrune(ctx, e.st, e.archive, 31, e.vopts()); err == nil {
		t.Fatal("pruned over an archive that does not verify")
	}
	if rs := records(t, e.st); len(rs) != 19 || rs[0].Seq != 21 {
		t.Fatalf("records left: %d", len(rs))
	}
}

type ledgerVerifiers = note.Verifiers

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func jsonMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recordLines is the records of an archive's content (what is hashed; the header and trailer
// are checked for what they say, not for how it is spelt).
func recordLines(content []byte) []byte {
	var out []byte
	for _, l := range bytes.SplitAfter(content, []byte("\n")) {
		if bytes.HasPrefix(l, []byte(`{"v":`)) {
			out = append(out, l...)
		}
	}
	return out
}

// Whatever an archive file holds — damaged, cut short, hostile — reading and verifying it is
// an error or a report, never a panic, and only the authentic file verifies.
func FuzzArchiveFile(f *testing.F) {
	dbDir := f.TempDir()
	st, err := sqlite.OpenLedger(filepath.Join(dbDir, "ledger.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	e := &archiveEnv{env: newEnv(f, st), db: st, archive: filepath.Join(dbDir, "archive")}
	l := e.open(f, func(o *ledger.Options) { o.CheckpointRecords = 10 })
	for i := range 25 {
		mustAppend(f, l, decision(i))
	}
	mustClose(f, l)
	ctx := context.Background()
	for _, to := range []uint64{11, 21} {
		if _, err := ledger.ArchiveAndPrune(ctx, st, e.archive, to, e.vopts()); err != nil {
			f.Fatal(err)
		}
	}
	as, err := ledger.ListArchives(e.archive)
	if err != nil {
		f.Fatal(err)
	}
	zr, err := os.Open(as[1].Path)
	if err != nil {
		f.Fatal(err)
	}
	gr, err := gzip.NewReader(zr)
	if err != nil {
		f.Fatal(err)
	}
	var authentic bytes.Buffer
	if _, err := authentic.ReadFrom(gr); err != nil {
		f.Fatal(err)
	}
	zr.Close()
	f.Add(authentic.Bytes())
	f.Add([]byte(`{"archive":"portcullis-ledger-archive/1","origin":"x","from":0}` + "\n" + `{"archive_end":{},"to":0,"checkpoints":[]}` + "\n"))
	opts := e.vopts()
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(t.TempDir(), "a.jsonl.gz")
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(content)
		zw.Close()
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := ledger.OpenArchive(path)
		if err != nil {
			return
		}
		rep, err := ledger.VerifyArchive(context.Background(), a, opts)
		if err == nil && rep.Report.Intact && !bytes.Equal(recordLines(content), recordLines(authentic.Bytes())) {
			t.Fatalf("an archive with changed records verifies:\n%q", content)
		}
	})
}

// Only an archive of this store's own history, ending at or before the asked cut, is taken as an
// interrupted run's: another ledger's file signed with a trusted key, or a leftover that ends past
// the cut, prunes nothing.
func TestArchiveResumesOnlyItsOwnHistory(t *testing.T) {
	ctx := context.Background()
	other := newArchiveEnv(t, 38)
	if err := os.MkdirAll(other.archive, 0o755); err != nil {
		t.Fatal(err)
	}
	foreign, err := ledger.WriteArchive(ctx, other.st, other.archive, 21)
	if err != nil {
		t.Fatal(err)
	}
	e := newArchiveEnv(t, 38)
	if err := os.MkdirAll(e.archive, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(foreign.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.archive, filepath.Base(foreign.Path)), b, 0o600); err != nil {
		t.Fatal(err)
	}
	trustBoth := ledger.VerifyOptions{Keys: append(append([]string{}, e.keys.Public...), other.keys.Public...), CheckpointRecords: 10}
	if _, err := ledger.ArchiveAndPrune(ctx, e.st, e.archive, 21, trustBoth); err == nil {
		t.Error("pruned over another ledger's archive")
	}
	if n := len(records(t, e.st)); n != 40 {
		t.Fatalf("records left after a foreign archive: %d, want 40", n)
	}

	past := newArchiveEnv(t, 38)
	if err := os.MkdirAll(past.archive, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.WriteArchive(ctx, past.st, past.archive, 31); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.ArchiveAndPrune(ctx, past.st, past.archive, 21, past.vopts()); err == nil {
		t.Error("archiving to 21 resumed a file that ends at 31")
	}
	if n := len(records(t, past.st)); n != 40 {
		t.Fatalf("records left after archiving to 21 over a file ending at 31: %d, want 40", n)
	}
}
