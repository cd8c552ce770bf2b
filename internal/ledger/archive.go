package ledger

// This file is ledger retention: closed segments of the log — the records up to a signed
// checkpoint — are written to compressed files that verify on their own, then pruned from the
// store, which keeps the segment's end as its base (base.go). A file holds:
//
//	{"archive":"portcullis-ledger-archive/1","origin":…,"from":F,"start":<base at F>}   (no start when F = 0)
//	<record F's stored bytes>
//	…
//	<record T-1's stored bytes>
//	{"archive_end":<base at T>,"to":T,"checkpoints":[<every checkpoint of F+1…T records>]}
//
// one line each, gzip-compressed. The start base is the previous archive's end, signed; the end
// base is the checkpoint the live log (or the next archive) continues from, with its compact
// range. So each file verifies alone (its records against its own signed checkpoints, from its
// signed start), and the files chain into each other and into the live log by those bases.

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/transparency-dev/merkle/proof"
)

// ArchiveFormat names the archive file format in its first line.
const ArchiveFormat = "portcullis-ledger-archive/1"

// maxArchiveLine bounds one line of an archive (a record, or the trailer with its checkpoints).
const maxArchiveLine = 64 << 20

type archiveHeader struct {
	Archive string `json:"archive"`
	Origin  string `json:"origin"`
	From    uint64 `json:"from"`
	Start   *Base  `json:"start,omitempty"`
}

type archiveTrailer struct {
	End         Base     `json:"archive_end"`
	To          uint64   `json:"to"`
	Checkpoints [][]byte `json:"checkpoints"`
}

var (
	recordPrefix  = []byte(`{"v":`)
	trailerPrefix = []byte(`{"archive_end":`)
)

// ErrArchive: an archive file is not one (wrong format, damaged, half-written).
var ErrArchive = errors.New("ledger archive")

// ArchiveName is the file name of the archive of records [from, to).
func ArchiveName(from, to uint64) string {
	return fmt.Sprintf("ledger-%020d-%020d.jsonl.gz", from, to)
}

// Archive is an archive file opened for reading. It is a read-only Store (and Pruner: its base
// is its start), so Verify, ProveInclusion and ProveConsistency work on it as on a live log.
type Archive struct {
	Path string
	hdr  archiveHeader
	tr   archiveTrailer
}

// From is the first record's seq, To one past the last.
func (a *Archive) From() uint64 { return a.hdr.From }

// To is one past the last record's seq: the size of the checkpoint the archive ends at.
func (a *Archive) To() uint64 { return a.tr.To }

// Origin is the log the archive says it is of (verification checks the signatures).
func (a *Archive) Origin() string { return a.hdr.Origin }

// OpenArchive reads an archive's header and trailer (one pass over the file).
func OpenArchive(path string) (*Archive, error) {
	a := &Archive{Path: path}
	if err := a.read(func([]byte) error { return nil }); err != nil {
		return nil, err
	}
	return a, nil
}

// read reads the file, filling the header and trailer, and calls fn with each record line.
func (a *Archive) read(fn func(data []byte) error) error {
	f, err := os.Open(a.Path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrArchive, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrArchive, a.Path, err)
	}
	br := bufio.NewReaderSize(zr, 1<<16)
	line := func() ([]byte, error) {
		var buf []byte
		for {
			chunk, err := br.ReadSlice('\n')
			if len(buf)+len(chunk) > maxArchiveLine {
				return nil, fmt.Errorf("a line longer than %d bytes", maxArchiveLine)
			}
			if err == bufio.ErrBufferFull {
				buf = append(buf, chunk...)
				continue
			}
			if err != nil {
				if err == io.EOF && len(buf)+len(chunk) == 0 {
					return nil, io.EOF
				}
				if err == io.EOF {
					return nil, errors.New("the last line has no newline (the file is cut short)")
				}
				return nil, err
			}
			if buf == nil {
				return chunk[:len(chunk)-1], nil
			}
			buf = append(buf, chunk...)
			return buf[:len(buf)-1], nil
		}
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrArchive, a.Path, fmt.Sprintf(format, args...))
	}
	first, err := line()
	if err != nil {
		return bad("header: %v", err)
	}
	a.hdr = archiveHeader{}
	if err := strictJSON(first, &a.hdr); err != nil || a.hdr.Archive != ArchiveFormat {
		return bad("not a ledger archive (%s): its first line is not the header", ArchiveFormat)
	}
	ended := false
	for {
		l, err := line()
		if err == io.EOF {
			break
		}
		if err != nil {
			return bad("%v", err)
		}
		switch {
		case ended:
			return bad("a line after the trailer")
		case bytes.HasPrefix(l, recordPrefix):
			if err := fn(l); err != nil {
				return err
			}
		case bytes.HasPrefix(l, trailerPrefix):
			a.tr = archiveTrailer{}
			if err := strictJSON(l, &a.tr); err != nil {
				return bad("trailer: %v", err)
			}
			ended = true
		default:
			return bad("a line that is neither a record nor the trailer")
		}
	}
	if !ended {
		return bad("no trailer (the file is cut short)")
	}
	return nil
}

// strictJSON decodes one JSON value with no unknown fields and nothing after it.
func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

// Size implements Store: the archive's end.
func (a *Archive) Size(context.Context) (uint64, error) { return a.tr.To, nil }

// Scan implements Store, decompressing the file again. A record's seq is its position in the
// file (From + its line), not what it says: a removed or added line shows as a broken log.
func (a *Archive) Scan(ctx context.Context, from uint64, fn func(Entry) error) error {
	seq := a.hdr.From
	return a.read(func(data []byte) error {
		s := seq
		seq++
		if s < from {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(Entry{Seq: s, Data: data})
	})
}

// Checkpoints implements Store: the start's checkpoint, then those of the segment.
func (a *Archive) Checkpoints(_ context.Context, fn func(StoredCheckpoint) error) error {
	var notes [][]byte
	if a.hdr.Start != nil {
		notes = append(notes, a.hdr.Start.Checkpoint)
	}
	notes = append(notes, a.tr.Checkpoints...)
	for _, n := range notes {
		c, err := parseUnverified(n)
		if err != nil {
			c.Size = 0 // reported by verification as malformed
		}
		if err := fn(StoredCheckpoint{Size: c.Size, Note: n}); err != nil {
			return err
		}
	}
	return nil
}

// LatestCheckpoint implements Store: the end.
func (a *Archive) LatestCheckpoint(context.Context) (StoredCheckpoint, bool, error) {
	return StoredCheckpoint{Size: a.tr.To, Note: a.tr.End.Checkpoint, Frontier: a.tr.End.Frontier}, true, nil
}

var errReadOnlyArchive = errors.New("ledger archive: read-only")

// Commit implements Store: an archive is read-only.
func (a *Archive) Commit(context.Context, []Entry, *StoredCheckpoint) error {
	return errReadOnlyArchive
}

// Trim implements Store: an archive is read-only.
func (a *Archive) Trim(context.Context, uint64) error { return errReadOnlyArchive }

// Close implements Store.
func (a *Archive) Close() error { return nil }

// Prune implements Pruner: an archive is read-only.
func (a *Archive) Prune(context.Context, uint64, []byte) error { return errReadOnlyArchive }

// Base implements Pruner: the archive's start.
func (a *Archive) Base(context.Context) (uint64, []byte, bool, error) {
	if a.hdr.Start == nil {
		return 0, nil, false, nil
	}
	b, err := json.Marshal(a.hdr.Start)
	return a.hdr.From, b, err == nil, err
}

// WriteArchive writes the records of st from its base up to to — the size of a stored
// checkpoint — to dir/ArchiveName(from, to): written whole to a temporary file, fsynced,
// renamed, the directory fsynced. It returns the archive, opened.
func WriteArchive(ctx context.Context, st Store, dir string, to uint64) (*Archive, error) {
	from, start, err := baseSize(ctx, st)
	if err != nil {
		return nil, err
	}
	if to <= from {
		return nil, fmt.Errorf("archive up to %d: the log begins at %d", to, from)
	}
	var cps [][]byte
	var end []byte
	if err := st.Checkpoints(ctx, func(cp StoredCheckpoint) error {
		if cp.Size > from && cp.Size <= to {
			cps = append(cps, bytes.Clone(cp.Note))
			if cp.Size == to {
				end = cps[len(cps)-1]
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	if end == nil {
		return nil, fmt.Errorf("archive up to %d: %w", to, ErrPruneNoCheckpoint)
	}
	c, err := parseUnverified(end)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	tree, err := startTree(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	nodes, err := proof.Inclusion(to-1, to)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	coll := newNodeCollector()
	coll.add(nodes.IDs)
	coll.seed(tree)
	path := filepath.Join(dir, ArchiveName(from, to))
	err = writeFileWith(path, 0o644, func(w io.Writer) error {
		zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(zw, 1<<16)
		enc := json.NewEncoder(bw) // one line each, newline-terminated
		if err := enc.Encode(archiveHeader{Archive: ArchiveFormat, Origin: c.Origin, From: from, Start: start}); err != nil {
			return err
		}
		var last []byte
		err = st.Scan(ctx, from, func(e Entry) error {
			if e.Seq >= to {
				return errStop
			}
			if e.Seq != tree.End() {
				return fmt.Errorf("record %d missing (the store has %d next)", tree.End(), e.Seq)
			}
			if bytes.IndexByte(e.Data, '\n') >= 0 || !bytes.HasPrefix(e.Data, recordPrefix) {
				return fmt.Errorf("record %d is not one line of a record", e.Seq)
			}
			bw.Write(e.Data)
			bw.WriteByte('\n')
			leaf := LeafHash(e.Data)
			last = append(last[:0], e.Data...)
			return tree.Append(leaf[:], coll.visit)
		})
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
		if tree.End() != to {
			return fmt.Errorf("the log ends at %d, before %d", tree.End(), to)
		}
		eb, err := baseAt(end, tree, coll, last)
		if err != nil {
			return err
		}
		if err := enc.Encode(archiveTrailer{End: eb, To: to, Checkpoints: cps}); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		return zw.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return OpenArchive(path)
}

// ArchiveReport is the verification of one archive file on its own.
type ArchiveReport struct {
	Path   string `json:"path"`
	From   uint64 `json:"from"`
	To     uint64 `json:"to"`
	Report Report `json:"report"`
}

// VerifyArchive verifies an archive on its own: its start base against its signed checkpoint,
// every record, every checkpoint of the segment, and its end base (the compact range and last
// record the next segment or the live log continues from).
func VerifyArchive(ctx context.Context, a *Archive, opts VerifyOptions) (ArchiveReport, error) {
	ar := ArchiveReport{Path: a.Path, From: a.From(), To: a.To()}
	rep, err := Verify(ctx, a, opts)
	if err != nil {
		return ar, err
	}
	ar.Report = rep
	if !rep.Intact {
		return ar, nil
	}
	fail := func(seq uint64, code, reason string) {
		ar.Report.Intact, ar.Report.FirstBadSeq, ar.Report.Problem, ar.Report.Reason = false, &seq, code, reason
	}
	if a.hdr.Start == nil && a.hdr.From != 0 {
		fail(a.hdr.From, ProblemBaseMismatch, fmt.Sprintf("the archive begins at %d without the checkpoint it continues from", a.hdr.From))
		return ar, nil
	}
	vs, _, err := ParseVerifiers(opts.Keys)
	if err != nil {
		return ar, fmt.Errorf("verify archive: %w", err)
	}
	o, err := a.tr.End.open(vs)
	switch {
	case a.To() == 0 || err != nil:
		fail(max(a.To(), 1)-1, ProblemBaseMismatch, fmt.Sprintf("the archive's end (what the log continues from): %v", err))
	case o.c.Size != a.To() || rep.LatestCheckpoint == nil || rep.LatestCheckpoint.Size != a.To():
		fail(a.To()-1, ProblemBaseMismatch, fmt.Sprintf("the archive's end signs %d records, its records end at %d", o.c.Size, a.To()))
	case o.c.Origin != a.Origin():
		fail(a.To()-1, ProblemBaseMismatch, fmt.Sprintf("the archive says it is of %s, its checkpoints are of %s", a.Origin(), o.c.Origin))
	}
	return ar, nil
}

// ArchivedReport is the verification of a log with its archives: each archive on its own,
// then the whole history, the archives chained in order into the live log.
type ArchivedReport struct {
	Intact   bool            `json:"intact"`
	Archives []ArchiveReport `json:"archives"`
	Log      Report          `json:"log"`
}

// ListArchives opens the archive files in dir, ordered by their first record.
func ListArchives(dir string) ([]*Archive, error) {
	names, err := filepath.Glob(filepath.Join(dir, "ledger-*-*.jsonl.gz"))
	if err != nil {
		return nil, err
	}
	var out []*Archive
	for _, n := range names {
		a, err := OpenArchive(n)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(x, y *Archive) int { return cmp.Compare(x.From(), y.From()) })
	return out, nil
}

// VerifyArchived verifies each archive on its own, then the log's whole history: the archives
// and the live log read as one log, so an edited, removed, swapped or reordered archive breaks
// the chain (seq, prev, the roots the checkpoints sign) exactly as a damaged record would.
func VerifyArchived(ctx context.Context, archives []*Archive, live Store, opts VerifyOptions) (ArchivedReport, error) {
	out := ArchivedReport{Intact: true}
	for _, a := range archives {
		ar, err := VerifyArchive(ctx, a, opts)
		if err != nil {
			return out, err
		}
		out.Archives = append(out.Archives, ar)
		out.Intact = out.Intact && ar.Report.Intact
	}
	rep, err := Verify(ctx, &chain{archives: archives, live: live}, opts)
	if err != nil {
		return out, err
	}
	if rep.Intact {
		// The chain reads the archived records, not the live log's base: check it too.
		if b, err := LoadBase(ctx, live); err != nil {
			rep.Intact, rep.Problem, rep.Reason = false, ProblemBaseMismatch, err.Error()
		} else if b != nil {
			vs, _, err := ParseVerifiers(opts.Keys)
			if err != nil {
				return out, fmt.Errorf("verify: %w", err)
			}
			if o, err := b.open(vs); err != nil {
				s := uint64(0)
				if n, e := b.Size(); e == nil {
					s = n
				}
				rep.Intact, rep.FirstBadSeq, rep.Problem, rep.Reason = false, &s, ProblemBaseMismatch, err.Error()
			} else if len(archives) == 0 || archives[len(archives)-1].To() < o.c.Size {
				s := uint64(0)
				if len(archives) > 0 {
					s = archives[len(archives)-1].To()
				}
				rep.Intact, rep.FirstBadSeq, rep.Problem, rep.Reason = false, &s, ProblemMissingArchive,
					fmt.Sprintf("the live log begins at %d but the archives end at %d: an archive is missing", o.c.Size, s)
			}
		}
	}
	out.Log = rep
	out.Intact = out.Intact && rep.Intact
	return out, nil
}

// chain reads archives and the live log as one log, from the first archive's start.
type chain struct {
	archives []*Archive
	live     Store
}

func (c *chain) Size(ctx context.Context) (uint64, error) { return c.live.Size(ctx) }

func (c *chain) Scan(ctx context.Context, from uint64, fn func(Entry) error) error {
	next := uint64(0)
	for _, a := range c.archives {
		next = a.To()
		if a.To() <= from {
			continue
		}
		if err := a.Scan(ctx, from, fn); err != nil {
			return err
		}
	}
	return c.live.Scan(ctx, max(from, next), fn)
}

func (c *chain) Checkpoints(ctx context.Context, fn func(StoredCheckpoint) error) error {
	for _, a := range c.archives {
		if err := a.Checkpoints(ctx, fn); err != nil {
			return err
		}
	}
	return c.live.Checkpoints(ctx, fn)
}

func (c *chain) LatestCheckpoint(ctx context.Context) (StoredCheckpoint, bool, error) {
	return c.live.LatestCheckpoint(ctx)
}

func (c *chain) Commit(context.Context, []Entry, *StoredCheckpoint) error { return errReadOnlyArchive }
func (c *chain) Trim(context.Context, uint64) error                       { return errReadOnlyArchive }
func (c *chain) Close() error                                             { return nil }
func (c *chain) Prune(context.Context, uint64, []byte) error              { return errReadOnlyArchive }

// Base is the first archive's start: older archives may have been deleted on purpose; a gap
// between two archives is still a missing record.
func (c *chain) Base(ctx context.Context) (uint64, []byte, bool, error) {
	if len(c.archives) == 0 {
		return 0, nil, false, nil
	}
	return c.archives[0].Base(ctx)
}

// Retention says which records are archived and pruned: those older than MaxAge, those beyond
// the newest MaxRecords and those before Before (0: no bound of that kind), up to the newest
// checkpoint that follows only such records.
type Retention struct {
	MaxAge     time.Duration
	MaxRecords uint64
	// Before archives every record before it (an explicit cut: `audit archive --to`).
	Before uint64
}

// PlanArchive returns where retention cuts st's log now: the size of the newest stored
// checkpoint, at most limit, before which every record is due; 0 when nothing is due.
func PlanArchive(ctx context.Context, st Store, r Retention, now time.Time, limit uint64) (uint64, error) {
	from, _, err := baseSize(ctx, st)
	if err != nil {
		return 0, err
	}
	size, err := st.Size(ctx)
	if err != nil {
		return 0, err
	}
	cut := min(r.Before, size)
	if r.MaxRecords > 0 && size > r.MaxRecords {
		cut = size - r.MaxRecords
	}
	if r.MaxAge > 0 {
		before := now.Add(-r.MaxAge)
		byAge := from
		err := st.Scan(ctx, from, func(e Entry) error {
			rec, err := ParseRecord(e.Data)
			if err != nil || !rec.Time.Before(before) {
				return errStop // an unreadable record is not due: verification reports it
			}
			byAge = e.Seq + 1
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return 0, err
		}
		cut = max(cut, byAge)
	}
	cut = min(cut, limit)
	to := uint64(0)
	if err := st.Checkpoints(ctx, func(cp StoredCheckpoint) error {
		if cp.Size > from && cp.Size <= cut {
			to = max(to, cp.Size)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	return to, nil
}

// ArchiveResult says what one archive step of ApplyRetention did.
type ArchiveResult struct {
	Archive  string `json:"archive,omitempty"`
	From     uint64 `json:"from"`
	To       uint64 `json:"to"`
	Bytes    int64  `json:"bytes,omitempty"`
	Resumed  bool   `json:"resumed,omitempty"` // an earlier run wrote the archive and stopped before pruning
	Verified bool   `json:"verified"`
}

// archiveAndPrune archives st's records from its base up to to (the size of a stored
// checkpoint) into dir, verifies the file on its own with opts, and only then prunes them: one
// step of ApplyRetention, under the archive lock its caller holds. An archive a previous run
// wrote from the same base but did not prune is verified and pruned instead of being written
// again, so a run interrupted at any point is completed by the next. A file that does not
// verify is left for inspection and nothing is pruned.
func archiveAndPrune(ctx context.Context, st Store, dir string, to uint64, opts VerifyOptions) (ArchiveResult, error) {
	p, ok := st.(Pruner)
	if !ok {
		return ArchiveResult{}, fmt.Errorf("archive: the %T store cannot prune", st)
	}
	from, _, err := baseSize(ctx, st)
	if err != nil {
		return ArchiveResult{}, err
	}
	res := ArchiveResult{From: from}
	if to <= from {
		return res, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("archive: %w", err)
	}
	existing, err := ListArchives(dir)
	if err != nil {
		return res, fmt.Errorf("archive: %w", err)
	}
	var a *Archive
	for _, e := range existing {
		if e.From() == from {
			a, res.Resumed = e, true
		}
	}
	if a != nil {
		// A file from this base verifies only on its own; before its end may cut the live log, it
		// must be this store's history (its last record is the store's, byte for byte: the hash
		// chain then covers every record before it) and end within the asked cut.
		if a.To() > to {
			return res, fmt.Errorf("archive: %s ends at %d, past the asked %d; nothing was pruned (archive to %d, or move the file away)", a.Path, a.To(), to, a.To())
		}
		if err := ownHistory(ctx, st, a); err != nil {
			return res, fmt.Errorf("archive: %s: %w; nothing was pruned", a.Path, err)
		}
	}
	if a == nil {
		if a, err = WriteArchive(ctx, st, dir, to); err != nil {
			return res, err
		}
	}
	res.Archive, res.To = a.Path, a.To()
	if fi, err := os.Stat(a.Path); err == nil {
		res.Bytes = fi.Size()
	}
	ar, err := VerifyArchive(ctx, a, opts)
	if err != nil {
		return res, fmt.Errorf("archive: verify %s: %w", a.Path, err)
	}
	if !ar.Report.Intact {
		return res, fmt.Errorf("archive: %s does not verify (%s: %s); nothing was pruned", a.Path, ar.Report.Problem, ar.Report.Reason)
	}
	res.Verified = true
	eb, err := json.Marshal(a.tr.End)
	if err != nil {
		return res, fmt.Errorf("archive: %w", err)
	}
	if err := p.Prune(ctx, a.To(), eb); err != nil {
		return res, fmt.Errorf("archive: prune: %w", err)
	}
	return res, nil
}

// ownHistory checks that a's last record is the store's record at the same place.
func ownHistory(ctx context.Context, st Store, a *Archive) error {
	last := a.To() - 1
	var stored []byte
	err := st.Scan(ctx, last, func(e Entry) error {
		if e.Seq == last {
			stored = e.Data
		}
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("read record %d: %w", last, err)
	}
	if stored == nil || !bytes.Equal(stored, a.tr.End.Last) {
		return fmt.Errorf("its record %d is not this ledger's", last)
	}
	return nil
}

// DefaultSegmentRecords bounds the records of one archive file unless configured.
const DefaultSegmentRecords = 100_000

// ApplyRetention archives and prunes every record r finds due now (PlanArchive), or when to is
// not 0 the records before the newest stored checkpoint at or below to, one file of at most segment records at a time (each cut at a stored checkpoint; a
// segment may exceed it only when no checkpoint falls inside it). It returns what it did,
// stopping at the first failure. It plans and archives under the store's archive lock: when
// another archiver holds it, it does nothing and returns an *ArchiveBusyError.
func ApplyRetention(ctx context.Context, st Store, dir string, r Retention, to, segment uint64, now time.Time, opts VerifyOptions) ([]ArchiveResult, error) {
	unlock, err := lockArchive(ctx, st)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if segment == 0 {
		segment = DefaultSegmentRecords
	}
	limit := uint64(math.MaxUint64)
	if to > 0 {
		limit, r = to, Retention{Before: to}
	}
	to, err = PlanArchive(ctx, st, r, now, limit)
	if err != nil {
		return nil, err
	}
	var out []ArchiveResult
	for {
		from, _, err := baseSize(ctx, st)
		if err != nil || from >= to {
			return out, err
		}
		cut, first := uint64(0), uint64(0)
		if err := st.Checkpoints(ctx, func(cp StoredCheckpoint) error {
			if cp.Size > from && cp.Size <= to {
				if cp.Size <= from+segment {
					cut = max(cut, cp.Size)
				}
				if first == 0 || cp.Size < first {
					first = cp.Size
				}
			}
			return nil
		}); err != nil {
			return out, err
		}
		if cut == 0 {
			cut = first
		}
		if cut == 0 {
			return out, fmt.Errorf("archive up to %d: %w", to, ErrPruneNoCheckpoint)
		}
		res, err := archiveAndPrune(ctx, st, dir, cut, opts)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
}
