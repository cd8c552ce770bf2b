package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// Problem codes in a verification report. They are stable: scripts branch on them.
const (
	ProblemMalformedRecord     = "malformed_record"
	ProblemMissingRecord       = "missing_record"
	ProblemSeqMismatch         = "seq_mismatch" // inserted, duplicated or reordered records
	ProblemPrevMismatch        = "prev_mismatch"
	ProblemRootMismatch        = "root_mismatch"
	ProblemBadSignature        = "bad_signature"
	ProblemForeignSignature    = "foreign_signature"
	ProblemMalformedCheckpoint = "malformed_checkpoint"
	ProblemCheckpointsDecrease = "checkpoints_decrease"
	ProblemTruncated           = "truncated"
	ProblemRollback            = "rollback"
	ProblemFork                = "fork"
	// ProblemNoCheckpoint: the log has records but no signed checkpoint at all.
	ProblemNoCheckpoint = "no_checkpoint"
	// ProblemUnsignedTail: records after the newest checkpoint that the checkpoint cadence
	// would have covered (see VerifyOptions): checkpoints were removed, or the gateway stopped
	// without a shutdown and has not been restarted since.
	ProblemUnsignedTail = "unsigned_tail"
	// ProblemBaseMismatch: the base a pruned log begins at — its checkpoint, compact range or
	// last archived record — does not check out against its signed root.
	ProblemBaseMismatch = "base_mismatch"
	// ProblemMissingArchive: the archives do not join each other or the live log (one was
	// removed, or belongs to another ledger).
	ProblemMissingArchive = "missing_archive"
)

// VerifyOptions say what verification trusts.
type VerifyOptions struct {
	// Keys are the trusted verifier keys (the auditor's own copy; every key the log has used,
	// or the first key: a key_rotation record co-signed by a trusted key extends the trust).
	Keys []string
	// Trusted are signed checkpoints kept outside the log (an earlier `audit checkpoint`).
	Trusted [][]byte
	// Progress, if set, is called now and then with the records checked and the total.
	Progress func(done, total uint64)

	// CheckpointInterval and CheckpointRecords are the cadence the gateway writing the log
	// signs checkpoints at (0: DefaultCheckpointInterval, DefaultCheckpointRecords): they bound
	// how many records may follow the newest checkpoint, and for how long.
	CheckpointInterval time.Duration
	CheckpointRecords  int
	// Now is the clock the age of the unsigned tail is measured with (time.Now when nil).
	Now func() time.Time
}

// CheckpointInfo describes a checkpoint in a report.
type CheckpointInfo struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   string `json:"root"` // base64, as in the checkpoint text
}

// Report is the outcome of Verify. Intact is false exactly when FirstBadSeq is set.
type Report struct {
	Intact             bool            `json:"intact"`
	Records            uint64          `json:"records"`
	RecordsChecked     uint64          `json:"records_checked"`
	CheckpointsChecked int             `json:"checkpoints_checked"`
	LatestCheckpoint   *CheckpointInfo `json:"latest_checkpoint,omitempty"`
	UnsignedRecords    uint64          `json:"unsigned_records"` // after the latest checkpoint
	// ArchivedRecords is where the log verified begins: the records before it were archived
	// and pruned, and the log starts from the signed checkpoint of their tree.
	ArchivedRecords uint64           `json:"archived_records,omitempty"`
	Trusted         []CheckpointInfo `json:"trusted_checkpoints,omitempty"`
	FirstBadSeq     *uint64          `json:"first_bad_seq,omitempty"`
	Problem         string           `json:"problem,omitempty"`
	Reason          string           `json:"reason,omitempty"`
}

func info(c Checkpoint) CheckpointInfo {
	return CheckpointInfo{Origin: c.Origin, Size: c.Size, Root: base64.StdEncoding.EncodeToString(c.Hash[:])}
}

type finding struct {
	seq    uint64
	code   string
	reason string
}

// keyring is the set of trusted verifiers, growing when a trusted key co-signs with a new one.
type keyring struct {
	trusted    map[[2]any]note.Verifier
	candidates map[[2]any]note.Verifier
}

func keyID(v note.Verifier) [2]any { return [2]any{v.Name(), v.KeyHash()} }

func (k *keyring) all() note.Verifiers {
	var list []note.Verifier
	for _, v := range k.trusted {
		list = append(list, v)
	}
	for id, v := range k.candidates {
		if _, ok := k.trusted[id]; !ok {
			list = append(list, v)
		}
	}
	return note.VerifierList(list...)
}

// open checks a stored checkpoint: at least one trusted signature; keys it co-signs with
// (announced by key_rotation records already seen) become trusted.
func (k *keyring) open(msg []byte) (Checkpoint, string, error) {
	c, n, err := OpenCheckpoint(msg, k.all())
	if err != nil {
		var ise *note.InvalidSignatureError
		if errors.As(err, &ise) {
			return c, ProblemBadSignature, err
		}
		if errors.Is(err, ErrMalformedCheckpoint) {
			return c, ProblemMalformedCheckpoint, err
		}
		return c, ProblemForeignSignature, err
	}
	byTrusted := false
	for _, s := range n.Sigs {
		if _, ok := k.trusted[[2]any{s.Name, s.Hash}]; ok {
			byTrusted = true
		}
	}
	if !byTrusted {
		return c, ProblemForeignSignature, errors.New("checkpoint is signed only by keys no trusted key vouched for")
	}
	for _, s := range n.Sigs {
		id := [2]any{s.Name, s.Hash}
		if v, ok := k.candidates[id]; ok {
			k.trusted[id] = v
		}
	}
	return c, "", nil
}

// Verify checks the whole log in st against the trusted keys and checkpoints: every record's
// bytes, seq and prev link, every stored checkpoint's signature and root, their order, and —
// for each trusted checkpoint — that the log still contains it (no rollback, no fork), by a
// consistency proof from it to the log's current tree. It stops at the first problem.
// A returned error means the log could not be read; a tampered log is a Report with
// Intact false.
func Verify(ctx context.Context, st Store, opts VerifyOptions) (Report, error) {
	v := &verification{ctx: ctx, st: st, opts: opts}
	for _, step := range []func() error{
		v.keys,
		v.snapshot,
		v.base,
		v.storedCheckpoints,
		v.trustedCheckpoints,
		v.records,
		v.tail,
	} {
		if err := step(); err != nil {
			return v.rep, err
		}
	}
	return v.report(), nil
}

// verification is the state of one Verify run, in the order its steps fill it.
type verification struct {
	ctx  context.Context
	st   Store
	opts VerifyOptions
	rep  Report

	// keys: the trusted keys, and the candidates key_rotation records name.
	ring        *keyring
	trustedOnly note.Verifiers

	// snapshot: the log's size when verification began, and the first problem found.
	total uint64
	first finding

	// base: where a pruned log begins (0 when nothing was pruned), its tree there and the
	// leaf hash of the record before; baseBad when the base does not check out.
	start     uint64
	startTree *compact.Range
	startLeaf [32]byte
	baseBad   bool

	// storedCheckpoints: the stored checkpoints by size.
	at map[uint64][]storedCP

	// trustedCheckpoints: the auditor's checkpoints by size, and the consistency proofs from
	// each to the log's current tree.
	trustedAt map[uint64][]Checkpoint
	coll      *nodeCollector
	consists  []consist

	// records: the tree of the records read so far.
	tree     *compact.Range
	lastLeaf [32]byte
	latest   *Checkpoint
	i        uint64 // records read and checked
	broken   int64  // a record whose prev link failed, awaiting the next record
}

// storedCP is a stored checkpoint: its place in commit order, its note and its unverified body.
type storedCP struct {
	i   int
	msg []byte
	c   Checkpoint
}

// consist is a trusted checkpoint with the nodes of its consistency proof.
type consist struct {
	c     Checkpoint
	nodes proof.Nodes
}

// errStopped ends the record scan at the first problem.
var errStopped = errors.New("stopped")

// rotationKind marks a key_rotation record in its encoding.
var rotationKind = []byte(`"kind":"key_rotation"`)

// note records a problem at seq; the earliest one is the report's.
func (v *verification) note(seq uint64, code, reason string) {
	if seq < v.first.seq {
		v.first = finding{seq, code, reason}
	}
}

// keys parses the trusted keys.
func (v *verification) keys() error {
	_, list, err := ParseVerifiers(v.opts.Keys)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	v.ring = &keyring{trusted: map[[2]any]note.Verifier{}, candidates: map[[2]any]note.Verifier{}}
	for _, k := range list {
		v.ring.trusted[keyID(k)] = k
	}
	v.trustedOnly = note.VerifierList(list...)
	return nil
}

// snapshot fixes the time and the log's size the verification is of.
func (v *verification) snapshot() error {
	// The log is verified as it was when its size was read: a live gateway keeps appending,
	// and records and checkpoints committed since are not part of this verification.
	snapshot := time.Now()
	if v.opts.Now != nil {
		snapshot = v.opts.Now()
	}
	v.opts.Now = func() time.Time { return snapshot }
	total, err := v.st.Size(v.ctx)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	v.total = total
	v.rep.Records = total
	v.first = finding{seq: math.MaxUint64}
	return nil
}

// base opens the base of a pruned log with the trusted keys (key rotations announced in the
// archived part are not read here: the auditor gives every key, as `audit pubkey` lists them).
func (v *verification) base() error {
	from, b, err := baseSize(v.ctx, v.st)
	if err != nil {
		if errors.Is(err, ErrBase) {
			v.note(0, ProblemBaseMismatch, err.Error())
			v.baseBad = true
			return nil
		}
		return fmt.Errorf("verify: %w", err)
	}
	v.startTree = factory.NewEmptyRange(0)
	if b == nil {
		return nil
	}
	v.start = from
	v.rep.ArchivedRecords = from
	o, err := b.open(v.trustedOnly)
	if err != nil {
		v.note(from, ProblemBaseMismatch, fmt.Sprintf("the base of the live log (records before %d were archived): %v", from, err))
		v.baseBad = true
		return nil
	}
	v.startTree, v.startLeaf = o.tree, o.lastLeaf
	v.latest = &o.c
	return nil
}

// storedCheckpoints reads the stored checkpoints, in commit order: bodies first (signatures
// are checked in the pass, once any key_rotation records they cover have been read).
func (v *verification) storedCheckpoints() error {
	v.at = map[uint64][]storedCP{}
	var prevSize uint64
	var beyond []storedCP // checkpoints past the size read: newer than the snapshot, or truncation
	n := 0
	err := v.st.Checkpoints(v.ctx, func(cp StoredCheckpoint) error {
		n++
		msg := append([]byte(nil), cp.Note...)
		c, err := parseUnverified(msg)
		if err != nil {
			v.note(prevSize, ProblemMalformedCheckpoint, fmt.Sprintf("checkpoint #%d: %v", n, err))
			return nil
		}
		if c.Size < prevSize {
			v.note(c.Size, ProblemCheckpointsDecrease, fmt.Sprintf("checkpoint #%d has size %d, below the previous checkpoint's %d", n, c.Size, prevSize))
		}
		if c.Size > v.total {
			beyond = append(beyond, storedCP{n, msg, c})
		}
		prevSize = max(prevSize, c.Size)
		v.at[c.Size] = append(v.at[c.Size], storedCP{n, msg, c})
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if len(beyond) > 0 {
		// A checkpoint commits with its records: one beyond the log's size now means records
		// were removed; one beyond only the size read first was committed since (a live log).
		now, err := v.st.Size(v.ctx)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		for _, b := range beyond {
			if b.c.Size > now {
				v.note(v.total, ProblemTruncated, fmt.Sprintf("checkpoint #%d signs %d records but the log has %d: records were removed", b.i, b.c.Size, now))
			}
		}
	}
	return nil
}

// trustedCheckpoints opens the externally kept checkpoints: the auditor's; they must verify
// with the given keys alone.
func (v *verification) trustedCheckpoints() error {
	v.trustedAt = map[uint64][]Checkpoint{}
	v.coll = newNodeCollector()
	for i, msg := range v.opts.Trusted {
		c, _, err := OpenCheckpoint(msg, v.trustedOnly)
		if err != nil {
			return fmt.Errorf("verify: trusted checkpoint %d: %w", i+1, err)
		}
		v.rep.Trusted = append(v.rep.Trusted, info(c))
		if c.Size < v.start {
			return fmt.Errorf("verify: trusted checkpoint %d: it signs %d records, which were archived (the live log begins at %d): %w; verify with the archives",
				i+1, c.Size, v.start, ErrArchived)
		}
		if c.Size > v.total {
			v.note(v.total, ProblemRollback, fmt.Sprintf("a trusted checkpoint signs %d records but the log has %d: the log was rolled back", c.Size, v.total))
			continue
		}
		v.trustedAt[c.Size] = append(v.trustedAt[c.Size], c)
		nodes, err := proof.Consistency(c.Size, v.total)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		v.coll.add(nodes.IDs)
		v.consists = append(v.consists, consist{c, nodes})
	}
	return nil
}

// checkAt checks every checkpoint of the current tree size.
func (v *verification) checkAt(size uint64) {
	if len(v.at[size]) == 0 && len(v.trustedAt[size]) == 0 {
		return
	}
	root := rootOf(v.tree)
	bad := uint64(0)
	if size > 0 {
		bad = size - 1
	}
	for _, s := range v.at[size] {
		c, code, err := v.ring.open(s.msg)
		if err != nil {
			v.note(bad, code, fmt.Sprintf("checkpoint #%d (size %d): %v", s.i, size, err))
			continue
		}
		v.rep.CheckpointsChecked++
		if _, _, err := c.SignedAt(); err != nil {
			v.note(bad, ProblemMalformedCheckpoint, fmt.Sprintf("checkpoint #%d (size %d): %v", s.i, size, err))
			continue
		}
		if c.Hash != root {
			v.note(bad, ProblemRootMismatch, fmt.Sprintf("checkpoint #%d: the root of the first %d records does not match the signed root (records before %d were changed)", s.i, size, size))
			continue
		}
		if v.latest == nil || c.Size >= v.latest.Size {
			cc := c
			v.latest = &cc
		}
	}
	for _, c := range v.trustedAt[size] {
		if c.Hash != root {
			v.note(bad, ProblemFork, fmt.Sprintf("the log's root at size %d differs from a trusted checkpoint's: the log forked or was rewritten", size))
		}
	}
}

// records reads every record up to the snapshot's size, checking each and the checkpoints of
// each tree size on the way, then the trusted checkpoints' consistency with the whole.
func (v *verification) records() error {
	v.broken = -1
	if v.baseBad {
		return nil
	}
	v.tree, v.lastLeaf, v.i = v.startTree, v.startLeaf, v.start
	v.coll.seed(v.tree)
	v.checkAt(v.i)
	err := scanPipelined(v.ctx, v.st, v.record)
	if err != nil && !errors.Is(err, errStopped) {
		return fmt.Errorf("verify: read records: %w", err)
	}
	if v.broken >= 0 && v.first.seq == math.MaxUint64 {
		b := uint64(v.broken)
		v.note(b-1, ProblemPrevMismatch, fmt.Sprintf("record %d or the prev of record %d (the last) was changed: they no longer link", b-1, b))
	}
	v.rep.RecordsChecked = v.i - v.start
	if v.i < v.total && v.i < v.first.seq {
		v.note(v.i, ProblemMissingRecord, fmt.Sprintf("record %d is missing (the log claims %d records)", v.i, v.total))
	}
	if v.first.seq == math.MaxUint64 {
		v.consistency()
	}
	return nil
}

// record checks one record: its seq, its prev link, a key rotation it carries; and adds it to
// the tree. It returns errStopped at the first problem.
func (v *verification) record(e Entry) error {
	i := v.i
	if i >= v.first.seq || e.Seq >= v.total {
		return errStopped
	}
	if e.Seq != i {
		v.note(i, ProblemMissingRecord, fmt.Sprintf("record %d is missing (the next stored is %d)", i, e.Seq))
		return errStopped
	}
	h, err := ParseHeader(e.Data)
	if err != nil {
		v.note(i, ProblemMalformedRecord, fmt.Sprintf("record %d: %v", i, err))
		return errStopped
	}
	if h.Seq != i {
		v.note(i, ProblemSeqMismatch, fmt.Sprintf("record stored at %d says seq %d: records were inserted, duplicated or reordered", i, h.Seq))
		return errStopped
	}
	if v.broken >= 0 {
		// Record i-1's link was broken. If record i still links to i-1, the bytes of i-1
		// are authentic and its own prev was changed; else the record before it was.
		b := uint64(v.broken)
		if !h.HasPrev || h.Prev != v.lastLeaf {
			v.note(b, ProblemPrevMismatch, fmt.Sprintf("record %d: its prev was changed (it no longer matches the hash of record %d, while record %d still links to it)", b, b-1, b+1))
		} else {
			v.note(b-1, ProblemPrevMismatch, fmt.Sprintf("record %d was changed: its hash no longer matches the prev of record %d", b-1, b))
		}
		return errStopped
	}
	if i == 0 && h.HasPrev {
		v.note(0, ProblemPrevMismatch, "record 0 has a prev")
		return errStopped
	}
	if i > 0 && (!h.HasPrev || h.Prev != v.lastLeaf) {
		// Read one more record to tell which of the two was changed.
		v.broken = int64(i)
	}
	// The kind is the fifth field of the canonical encoding, well inside the first 256
	// bytes; an authentic record cannot hide it further in (any change breaks the hashes).
	if bytes.Contains(e.Data[:min(len(e.Data), 256)], rotationKind) {
		r, err := ParseRecord(e.Data)
		if err != nil {
			v.note(i, ProblemMalformedRecord, fmt.Sprintf("record %d: %v", i, err))
			return errStopped
		}
		if r.KeyRotation != nil {
			for _, k := range []string{r.KeyRotation.OldKey, r.KeyRotation.NewKey} {
				if kv, err := note.NewVerifier(k); err == nil {
					v.ring.candidates[keyID(kv)] = kv
				}
			}
		}
	}
	leaf := LeafHash(e.Data) // a fresh array: the range keeps the slice it is given
	v.lastLeaf = leaf
	if err := v.tree.Append(leaf[:], v.coll.visit); err != nil {
		return err
	}
	v.i++
	if v.broken < 0 {
		v.checkAt(v.i)
	}
	if v.opts.Progress != nil && v.i%65536 == 0 {
		v.opts.Progress(v.i, v.total)
	}
	return nil
}

// consistency checks, once the whole log was read, that each trusted checkpoint is
// consistent with it.
func (v *verification) consistency() {
	root := rootOf(v.tree)
	for _, c := range v.consists {
		hs, err := v.coll.proof(c.nodes)
		if err == nil {
			err = proof.VerifyConsistency(hasher, c.c.Size, v.total, hs, c.c.Hash[:], root[:])
		}
		if err != nil {
			bad := uint64(0)
			if c.c.Size > 0 {
				bad = c.c.Size - 1
			}
			v.note(bad, ProblemFork, fmt.Sprintf("no consistency from the trusted checkpoint of size %d to the log: %v", c.c.Size, err))
		}
	}
}

// tail checks, when everything read is authentic as far as the checkpoints go, that what they
// do not cover is what the cadence leaves unsigned, no more.
func (v *verification) tail() error {
	if v.first.seq == math.MaxUint64 && v.i > v.start {
		if f, err := checkUnsignedTail(v.ctx, v.st, v.latest, v.i, v.opts); err != nil {
			return fmt.Errorf("verify: %w", err)
		} else if f != nil {
			v.note(f.seq, f.code, f.reason)
		}
	}
	return nil
}

// report completes the report: the latest checkpoint, what it leaves unsigned, and the first
// problem, if any.
func (v *verification) report() Report {
	if v.opts.Progress != nil {
		v.opts.Progress(v.i, v.total)
	}
	rep := v.rep
	if v.latest != nil {
		li := info(*v.latest)
		rep.LatestCheckpoint = &li
		rep.UnsignedRecords = v.i - v.latest.Size
	} else if v.i > v.start {
		rep.UnsignedRecords = v.i - v.start
	}
	if v.first.seq != math.MaxUint64 {
		s := v.first.seq
		rep.FirstBadSeq, rep.Problem, rep.Reason = &s, v.first.code, v.first.reason
		return rep
	}
	rep.Intact = true
	return rep
}

// scanPipelined is st.Scan with the store's reading on one goroutine and fn on the caller's,
// so reading (SQL decoding) and checking (hashing) use two cores. Records are copied into
// per-batch buffers; fn's error stops the reader and is returned unchanged.
func scanPipelined(ctx context.Context, st Store, fn func(Entry) error) error {
	const batchLen = 1024
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type batch struct {
		entries []Entry
	}
	ch := make(chan batch, 4)
	readErr := make(chan error, 1)
	go func() {
		defer close(ch)
		var cur batch
		var buf []byte
		flush := func() error {
			select {
			case ch <- cur:
				cur, buf = batch{}, nil
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := st.Scan(ctx, 0, func(e Entry) error {
			if buf == nil {
				buf = make([]byte, 0, 1<<20)
			}
			if len(buf)+len(e.Data) > cap(buf) {
				buf = make([]byte, 0, max(1<<20, len(e.Data)))
			}
			start := len(buf)
			buf = append(buf, e.Data...)
			cur.entries = append(cur.entries, Entry{Seq: e.Seq, Data: buf[start:len(buf):len(buf)]})
			if len(cur.entries) == batchLen {
				return flush()
			}
			return nil
		})
		if err == nil && len(cur.entries) > 0 {
			err = flush()
		}
		readErr <- err
	}()
	var fnErr error
	for b := range ch {
		if fnErr != nil {
			continue // drain so the reader can finish
		}
		for _, e := range b.entries {
			if fnErr = fn(e); fnErr != nil {
				cancel()
				break
			}
		}
	}
	err := <-readErr
	if fnErr != nil {
		return fnErr
	}
	return err
}

// checkUnsignedTail checks the records after the newest verified checkpoint (latest, nil when
// none) of a log of size records against the cadence the writer signs at. The writer commits
// a checkpoint with its first record, with every startup, recovery, key rotation and shutdown
// record, whenever CheckpointRecords records are unsigned and, while records arrive or after
// they stop, once CheckpointInterval has passed since the last one. So a tail is suspect when
// there is no checkpoint at all; when it holds more than CheckpointRecords records or a record
// the writer only ever commits with a checkpoint; when a record in it is dated more than
// CheckpointInterval + UnsignedGrace after the newest checkpoint's signed time; or when that
// much time has passed since then by the verifier's clock — a gateway still running would have
// signed the tail by now, one that stopped without a shutdown signs it when it restarts. Record
// times are written by whoever wrote the record; the checkpoint's time is signed.
func checkUnsignedTail(ctx context.Context, st Store, latest *Checkpoint, size uint64, opts VerifyOptions) (*finding, error) {
	interval, maxRecords := opts.CheckpointInterval, opts.CheckpointRecords
	if interval <= 0 {
		interval = DefaultCheckpointInterval
	}
	if maxRecords <= 0 {
		maxRecords = DefaultCheckpointRecords
	}
	maxAge := interval + UnsignedGrace
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	const after = "covered by no signed checkpoint"
	if latest == nil {
		return &finding{0, ProblemNoCheckpoint, fmt.Sprintf("%d records and no signed checkpoint: the checkpoints were removed (the ledger signs one with its first record)", size)}, nil
	}
	from := latest.Size
	unsigned := size - from
	if unsigned == 0 {
		return nil, nil
	}
	if unsigned > uint64(maxRecords) {
		return &finding{from, ProblemUnsignedTail, fmt.Sprintf("%d records after the newest checkpoint (of %d records) are %s, more than the %d the ledger leaves unsigned: checkpoints were removed", unsigned, from, after, maxRecords)}, nil
	}
	signed, hasTime, _ := latest.SignedAt() // a malformed time line was reported by checkAt
	var f *finding
	err := st.Scan(ctx, from, func(e Entry) error {
		if e.Seq >= size {
			return errStop
		}
		r, err := ParseRecord(e.Data)
		switch {
		case err != nil:
			f = &finding{e.Seq, ProblemMalformedRecord, fmt.Sprintf("record %d: %v", e.Seq, err)}
		case r.Kind == KindStartup || r.Kind == KindShutdown || r.Kind == KindRecovery || r.Kind == KindKeyRotation:
			f = &finding{from, ProblemUnsignedTail, fmt.Sprintf("record %d (%s) is %s, but the ledger commits every %s record with a checkpoint: checkpoints were removed", e.Seq, r.Kind, after, r.Kind)}
		case hasTime && r.Time.Sub(signed) > maxAge:
			f = &finding{from, ProblemUnsignedTail, fmt.Sprintf("record %d, dated %s, is %s, while the newest checkpoint (of %d records) was signed %s: the ledger signs within %v; checkpoints were removed",
				e.Seq, r.Time.Format(time.RFC3339Nano), after, from, signed.Format(time.RFC3339Nano), maxAge)}
		default:
			return nil
		}
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("read the unsigned records: %w", err)
	}
	if f == nil && hasTime && now().Sub(signed) > maxAge {
		f = &finding{from, ProblemUnsignedTail, fmt.Sprintf("%d records after the newest checkpoint (of %d records, signed %s) are still %s after %v: checkpoints were removed, or the gateway stopped without a shutdown and has not been restarted since (a restart checks and signs them)",
			unsigned, from, signed.Format(time.RFC3339), after, now().Sub(signed).Round(time.Second))}
	}
	return f, nil
}
