package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// Defaults of Options.
const (
	DefaultQueueSize          = 8192
	DefaultMaxBatch           = 1000
	DefaultCheckpointInterval = time.Second
	DefaultCheckpointRecords  = 1000
	DefaultLinger             = 2 * time.Millisecond
	DefaultRelaxedSyncBound   = 200 * time.Millisecond
)

// Errors callers branch on.
var (
	// ErrClosed: the ledger is closed (or closing) and takes no more records.
	ErrClosed = errors.New("ledger closed")
	// ErrNotDurable: the record's batch could not be made durable. The decision must be denied.
	ErrNotDurable = errors.New("ledger record not durable")
	// ErrInconsistent: start-up found the stored log inconsistent; the ledger refuses to start.
	ErrInconsistent = errors.New("ledger inconsistent")
)

// Options configure a Ledger.
type Options struct {
	Store Store
	// Signer signs checkpoints; its name is the log's origin.
	Signer note.Signer
	// Verifiers are the ledger's own public keys (to check its latest checkpoint at start-up).
	Verifiers note.Verifiers
	// KeyDir, when set, is where RotateKey keeps keys (see keys.go).
	KeyDir string
	// WitnessFile, when set, is where the ledger keeps the latest checkpoint it signed, outside
	// the store (beside the key: WitnessFile in the data directory). Open refuses a store that
	// is behind it or disagrees with it.
	WitnessFile string

	// SensitiveParams are parameter names always redacted (nil: DefaultSensitiveParams).
	SensitiveParams []string
	// Redactor reports detected secrets' paths; may be nil.
	Redactor Redactor
	// HashKey, when set, replaces sensitive values by their HMAC-SHA256 instead of a placeholder.
	HashKey []byte
	// MaxParamsBytes bounds stored parameters (0: DefaultMaxParamsBytes).
	MaxParamsBytes int

	QueueSize          int           // bounded queue of records waiting for the writer
	MaxBatch           int           // most records in one commit
	CheckpointInterval time.Duration // a checkpoint at least this often while records arrive
	CheckpointRecords  int           // and at least every this many records
	// Linger is the most the writer waits for more records when the last commit was slow and
	// carried more records than are queued (0: DefaultLinger; negative: never).
	Linger time.Duration

	// RelaxedResults commits tool_result records without waiting for the disk when the store
	// can (a RelaxedStore; never a shared store): the record is in the store's log before Append
	// returns — a process crash loses nothing — and on disk within RelaxedSyncBound, or sooner
	// with the next durable commit; a power loss may lose at most that bound's results.
	// Decisions and every other kind are always durable before Append returns.
	RelaxedResults bool
	// RelaxedSyncBound bounds how long a relaxed record waits for the disk (0:
	// DefaultRelaxedSyncBound).
	RelaxedSyncBound time.Duration

	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Message is written in the startup record (e.g. the binary's version).
	Message string
}

type result struct {
	seq uint64
	err error
}

type pending struct {
	body []byte
	done chan result
	// relaxed: the record may be committed without waiting for the disk (Options.RelaxedResults).
	relaxed bool
	// deadline is the appending caller's deadline (zero: none). A batch's commit is bounded by
	// the earliest deadline among its records, so a caller whose record was taken into a batch
	// can wait for that batch's answer — the truth about its record — and still return near
	// its deadline.
	deadline time.Time
	// state is queued, then taken (a batch carries it: its answer is the record's fate) or
	// withdrawn (its caller gave up first: no batch will ever carry it). One compare-and-swap
	// decides which, so "not durable" is never said of a record that is committed.
	state atomic.Int32
}

// States of a pending record.
const (
	pendQueued int32 = iota
	pendTaken
	pendWithdrawn
)

// take claims p for a batch. It reports false for a record its caller withdrew, and answers
// (and reports false for) one whose deadline passed while it waited: its commit could only fail.
func (p *pending) take(now time.Time) bool {
	if !p.state.CompareAndSwap(pendQueued, pendTaken) {
		return false
	}
	if !p.deadline.IsZero() && !now.Before(p.deadline) {
		p.done <- result{err: fmt.Errorf("%w: the caller's deadline passed before its record was committed", ErrNotDurable)}
		return false
	}
	return true
}

// Ledger appends records durably with group commit. It is safe for concurrent use.
type Ledger struct {
	opts   Options
	st     Store
	redact *redaction
	now    func() time.Time
	// relaxed is st when tool results may be committed without waiting for the disk
	// (Options.RelaxedResults); unsynced is set while a relaxed commit is not yet on disk, and
	// batchRelaxed while the batch being committed holds only relaxed records (seat holder only).
	relaxed      RelaxedStore
	unsynced     atomic.Bool
	batchRelaxed bool

	q    chan *pending
	ctl  chan func()
	stop chan struct{}
	done chan struct{}
	// token is the writer's seat: whoever holds it (sent into it) may touch the writer state
	// and commit. An Append that finds it free commits its own record at once, so a lone
	// caller pays no hand-off to the writer goroutine and back — two thread wake-ups per
	// record, a large part of a commit's latency on an idle machine. An Append that finds it
	// taken queues its record and sends on kick, so the writer goroutine commits it.
	token chan struct{}
	kick  chan struct{}

	mu     sync.RWMutex // held for reading while enqueueing; for writing to close
	closed bool

	// wit keeps the latest checkpoint this ledger signed outside the store (nil: no witness).
	wit *witness

	// writer state: touched only by the holder of token (and Open before the writer starts).
	signers []note.Signer
	origin  string
	head    // the end of the log as this writer knows it
	// shared is the store when other writers (replicas) append to it too: every commit then
	// catches up under the store's writer lock (shared.go). Nil for a single-writer store.
	shared     SharedStore
	headLoaded bool // shared: a commit has loaded the head from the store
	needResync bool
	buf        []byte
	batch      []*pending
	lastCommit time.Duration // how long the last commit took
	lastBatch  int           // and how many records it carried
	queuedEnd  int           // records waiting in the queue when it ended
	// seatDeadline is the deadline of the caller committing on its own goroutine (zero: none,
	// or the writer goroutine commits); commitContext bounds the commit by it.
	seatDeadline time.Time
	// batchDeadline is the earliest deadline of the records in the batch being committed (zero:
	// none); commitContext bounds the commit by it too.
	batchDeadline time.Time

	// metrics
	sizeA    atomic.Uint64
	cpSizeA  atomic.Uint64
	batches  atomic.Uint64
	failures atomic.Uint64
	lastErr  atomic.Pointer[error]
}

// Open opens the ledger on its store: it checks the latest checkpoint, recovers a torn tail,
// records the recovery of an unclean stop, writes a startup record and starts the writer.
// Any inconsistency other than a torn last record fails with ErrInconsistent.
func Open(ctx context.Context, opts Options) (*Ledger, error) {
	if opts.Store == nil || opts.Signer == nil || opts.Verifiers == nil {
		return nil, errors.New("open ledger: Store, Signer and Verifiers are required")
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.RelaxedSyncBound <= 0 {
		opts.RelaxedSyncBound = DefaultRelaxedSyncBound
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = DefaultCheckpointInterval
	}
	if opts.CheckpointRecords <= 0 {
		opts.CheckpointRecords = DefaultCheckpointRecords
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Linger == 0 {
		opts.Linger = DefaultLinger
	}
	names := opts.SensitiveParams
	if names == nil {
		names = DefaultSensitiveParams
	}
	l := &Ledger{
		opts:    opts,
		st:      opts.Store,
		redact:  newRedaction(names, opts.Redactor, opts.HashKey, opts.MaxParamsBytes),
		now:     opts.Now,
		q:       make(chan *pending, opts.QueueSize),
		ctl:     make(chan func()),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		token:   make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		signers: []note.Signer{opts.Signer},
		origin:  opts.Signer.Name(),
	}
	if opts.WitnessFile != "" {
		l.wit = newWitness(opts.WitnessFile)
	}
	if sh, ok := opts.Store.(SharedStore); ok {
		l.shared = sh
		if err := l.openShared(ctx); err != nil {
			return nil, err
		}
		l.start()
		return l, nil
	}
	if rs, ok := opts.Store.(RelaxedStore); ok && opts.RelaxedResults {
		l.relaxed = rs
	}
	rec, err := l.recover(ctx)
	if err != nil {
		return nil, err
	}
	if rec != nil {
		if err := l.writeSystem(&Record{Kind: KindRecovery, Recovery: rec, Message: rec.Reason}, true); err != nil {
			return nil, fmt.Errorf("open ledger: write recovery record: %w", err)
		}
	}
	// Signed at once, with the record: a log never has records and no checkpoint, and what the
	// last run left unsigned is covered before anything new is decided.
	if err := l.writeSystem(&Record{Kind: KindStartup, Message: opts.Message}, true); err != nil {
		return nil, fmt.Errorf("open ledger: write startup record: %w", err)
	}
	l.start()
	return l, nil
}

// start starts the writer goroutine and the witness's, once Open can no longer fail.
func (l *Ledger) start() {
	if l.wit != nil {
		go l.wit.run()
	}
	go l.run()
}

// head is the end of the log as the writer knows it: what its next batch chains onto.
type head struct {
	size     uint64
	lastLeaf [sha256.Size]byte // leaf hash of record size-1: the next record's prev
	tree     *compact.Range    // the Merkle tree of the first size records
	cpSize   uint64            // the latest checkpoint's size,
	cpTime   time.Time         // and when it was signed (by another writer: the time it carries)
}

// advance appends a record, already checked, to the head.
func (h *head) advance(data []byte) error {
	leaf := LeafHash(data) // the range keeps the slice it is given: each leaf its own array
	if err := h.tree.Append(leaf[:], nil); err != nil {
		return err
	}
	h.lastLeaf = leaf
	h.size++
	return nil
}

// loadCheckpoint sets h to the log at its latest signed checkpoint cp, which must verify with
// this ledger's keys and whose stored tree state must match its signed root; size is the
// log's size. It returns the checkpoint and the last record it covers (nil for an empty one).
func (l *Ledger) loadCheckpoint(ctx context.Context, v View, cp StoredCheckpoint, size uint64, h *head) (Checkpoint, []byte, error) {
	c, err := l.openLatest(cp)
	if err != nil {
		return c, nil, err
	}
	if c.Size > size {
		return c, nil, fmt.Errorf("%w: %d records stored but the latest signed checkpoint covers %d (records were removed)", ErrInconsistent, size, c.Size)
	}
	tr, err := rangeFromFrontier(c.Size, cp.Frontier)
	if err != nil {
		return c, nil, fmt.Errorf("%w: latest checkpoint's tree state: %v", ErrInconsistent, err)
	}
	if rootOf(tr) != c.Hash {
		return c, nil, fmt.Errorf("%w: latest checkpoint's tree state does not match its signed root", ErrInconsistent)
	}
	h.tree, h.size, h.cpSize = tr, c.Size, c.Size
	// The link into the tail: the leaf hash of the last checkpointed record.
	var last []byte
	if c.Size > 0 {
		if err := v.Scan(ctx, c.Size-1, func(e Entry) error {
			if e.Seq != c.Size-1 {
				return fmt.Errorf("%w: record %d missing", ErrInconsistent, c.Size-1)
			}
			h.lastLeaf = LeafHash(e.Data)
			last = append([]byte(nil), e.Data...)
			return errStop
		}); err != nil && !errors.Is(err, errStop) {
			if errors.Is(err, ErrInconsistent) {
				return c, nil, err
			}
			return c, nil, fmt.Errorf("read the last checkpointed record: %w", err)
		}
	}
	return c, last, nil
}

// openLatest checks the latest stored checkpoint's signature with this ledger's keys.
func (l *Ledger) openLatest(cp StoredCheckpoint) (Checkpoint, error) {
	c, _, err := OpenCheckpoint(cp.Note, l.opts.Verifiers)
	if err != nil {
		if l.shared != nil {
			return c, fmt.Errorf("%w: latest checkpoint: %v (replicas sharing a ledger must share its keys: %s, %s and %s)",
				ErrInconsistent, err, SigningKeyFile, PublicKeysFile, HashKeyFile)
		}
		return c, fmt.Errorf("%w: latest checkpoint: %v", ErrInconsistent, err)
	}
	if c.Size != cp.Size {
		return c, fmt.Errorf("%w: latest checkpoint is stored as size %d but signs size %d", ErrInconsistent, cp.Size, c.Size)
	}
	if _, _, err := c.SignedAt(); err != nil {
		return c, fmt.Errorf("%w: latest checkpoint: %v", ErrInconsistent, err)
	}
	return c, nil
}

// recover loads the tree state and checks the tail after the latest checkpoint. It returns the
// recovery details when the last stop was not clean.
func (l *Ledger) recover(ctx context.Context) (*Recovery, error) {
	size, err := l.st.Size(ctx)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	l.tree = factory.NewEmptyRange(0)
	cp, ok, err := l.st.LatestCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	var lastCovered []byte
	var latest *Checkpoint
	if ok {
		c, lc, err := l.loadCheckpoint(ctx, l.st, cp, size, &l.head)
		if err != nil {
			return nil, err
		}
		latest, lastCovered = &c, lc
	}
	if err := l.checkWitness(ctx, l.st, latest); err != nil {
		return nil, err
	}
	var last *Record
	var newest time.Time // the latest time among the unsigned records
	if lastCovered != nil {
		// A clean stop ends with a checkpointed shutdown record and no tail.
		last, _ = ParseRecord(lastCovered)
	}
	var torn error
	tornAt := uint64(0)
	err = l.st.Scan(ctx, l.size, func(e Entry) error {
		if torn != nil {
			return fmt.Errorf("%w: record %d is damaged (%v) and is not the last", ErrInconsistent, tornAt, torn)
		}
		if e.Seq != l.size {
			return fmt.Errorf("%w: record %d is missing (the store has %d next)", ErrInconsistent, l.size, e.Seq)
		}
		bad := l.checkTail(e)
		if bad != nil {
			torn, tornAt = bad, e.Seq
			return nil
		}
		r, _ := ParseRecord(e.Data)
		last = r
		if r.Time.After(newest) {
			newest = r.Time
		}
		return l.advance(e.Data)
	})
	if err != nil {
		if errors.Is(err, ErrInconsistent) {
			return nil, err
		}
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	if torn != nil && tornAt != size-1 {
		return nil, fmt.Errorf("%w: record %d is damaged (%v) and is not the last", ErrInconsistent, tornAt, torn)
	}
	if err := l.checkUnsigned(latest, l.size-l.cpSize, newest); err != nil {
		return nil, err
	}
	l.sizeA.Store(l.size)
	l.cpSizeA.Store(l.cpSize)
	l.cpTime = l.now()
	if torn != nil {
		// A torn last record was never acknowledged: its batch's commit did not complete.
		if err := l.st.Trim(ctx, tornAt); err != nil {
			return nil, fmt.Errorf("%w: trim torn record %d: %v", ErrInconsistent, tornAt, err)
		}
		return &Recovery{Reason: fmt.Sprintf("torn last record trimmed: %v", torn), FoundSize: size,
			Checkpoint: l.cpSize, TrimmedFrom: tornAt, Trimmed: 1}, nil
	}
	if size == 0 {
		return nil, nil
	}
	if last == nil || last.Kind != KindShutdown || l.cpSize != size {
		return &Recovery{Reason: "the previous run did not shut down cleanly", FoundSize: size, Checkpoint: l.cpSize}, nil
	}
	return nil, nil
}

var errStop = errors.New("stop")

// checkTail checks the record after the head (one not covered by a checkpoint it has
// verified): canonical, linked, in sequence.
func (h *head) checkTail(e Entry) error {
	if e.Seq != h.size {
		return fmt.Errorf("stored at seq %d, want %d", e.Seq, h.size)
	}
	if _, err := ParseRecord(e.Data); err != nil {
		return err
	}
	return h.checkLink(e)
}

// checkLink checks that e is the record after the head — stored at and saying seq h.size, its
// prev the leaf hash of the record before — reading only its header. A shared writer checks
// every record the others appended this way before chaining onto them; decoding each whole
// would cost more than the writer's own batch. Verification reads every record in full.
func (h *head) checkLink(e Entry) error {
	if e.Seq != h.size {
		return fmt.Errorf("stored at seq %d, want %d", e.Seq, h.size)
	}
	hd, err := ParseHeader(e.Data)
	if err != nil {
		return err
	}
	if hd.Seq != h.size {
		return fmt.Errorf("says seq %d", hd.Seq)
	}
	if h.size == 0 {
		if hd.HasPrev {
			return errors.New("record 0 has a prev")
		}
	} else if !hd.HasPrev || hd.Prev != h.lastLeaf {
		return errors.New("prev does not match the previous record's hash")
	}
	return nil
}

// Append records r durably and returns its seq. It returns only when the record's batch is
// committed (nil error) or failed (ErrNotDurable: deny the call). r's Seq and Prev are set by
// the ledger; its Params are redacted (sensitive names, the Redactor's paths and secretPaths)
// before anything is encoded. When the queue is full Append waits, up to ctx. When no commit is
// in progress the caller commits the batch itself, and ctx cannot cut that commit short (it has
// its own timeout, and other callers' records may be in it).
func (l *Ledger) Append(ctx context.Context, r *Record, secretPaths ...string) (uint64, error) {
	if r.Time.IsZero() {
		r.Time = l.now()
	}
	if !r.Kind.Valid() {
		return 0, fmt.Errorf("append: %w: unknown kind %q", ErrMalformedRecord, r.Kind)
	}
	l.redact.apply(r, secretPaths)
	body, err := encodeBody(r)
	if err != nil {
		// A field JSON cannot carry (a NaN score, say) must not leave the call unrecorded:
		// record who, what and the decision, and why the rest is missing.
		fb := &Record{Time: r.Time, Kind: r.Kind, DecisionID: r.DecisionID, RequestID: r.RequestID,
			Source: r.Source, Agent: r.Agent, User: r.User, Tool: r.Tool, ParamsSize: r.ParamsSize,
			ParamsHash: r.ParamsHash, PolicyVersion: r.PolicyVersion, Decision: r.Decision,
			Enforcement: r.Enforcement, Message: "record could not be encoded in full: " + err.Error()}
		if body, err = encodeBody(fb); err != nil {
			return 0, fmt.Errorf("append: %w", err)
		}
	}
	p := &pending{body: body, done: make(chan result, 1), relaxed: l.relaxed != nil && r.Kind == KindToolResult}
	p.deadline, _ = ctx.Deadline()
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return 0, fmt.Errorf("append: %w", ErrClosed)
	}
	select {
	case l.q <- p:
	case <-ctx.Done():
		l.mu.RUnlock()
		return 0, fmt.Errorf("append: queue full: %w", ctx.Err())
	}
	l.mu.RUnlock()
	select {
	case l.token <- struct{}{}:
		// The writer is idle: commit here, batch after batch, until this record is in one.
		// The commits are bounded by this caller's deadline (its decision timeout), not only
		// by commitTimeout: the caller cannot return before its commit does, and a store that
		// does not answer (a black-holed database) must not hold a decision past its timeout.
		// A cancellation without a deadline still does not cut the commit short.
		l.commitOwn(ctx, p)
	default:
		// A commit is in progress. If the writer goroutine holds the seat it is waiting for
		// records; if a caller does, the writer takes what it leaves queued.
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	// Durability is checked before the caller's context: when the answer and the context's end
	// are both ready, the answer wins (a select would pick either at random).
	select {
	case res := <-p.done:
		return res.seq, res.err
	default:
	}
	select {
	case res := <-p.done:
		return res.seq, res.err
	case <-ctx.Done():
		if p.state.CompareAndSwap(pendQueued, pendWithdrawn) {
			// No batch took the record, and now none will: it is definitely not in the log.
			return 0, fmt.Errorf("append: %w: waiting for a commit: %w", ErrNotDurable, ctx.Err())
		}
		// A batch carries the record: its answer is the record's fate, and the caller must be
		// told that, not "gave up" about a record that may be committed. The batch's commit is
		// bounded by this record's deadline (commitContext), so the wait is short; a context
		// cancelled without a deadline waits for the commit (at most commitTimeout).
		res := <-p.done
		return res.seq, res.err
	}
}

// commitOwn commits, on the caller's goroutine, batch after batch until p is in one. The
// commits are bounded by this caller's deadline (its decision timeout), not only by
// commitTimeout: the caller cannot return before its commit does, and a store that does not
// answer (a black-holed database) must not hold a decision past its timeout. A cancellation
// without a deadline still does not cut the commit short. The seat is given back however this
// ends: a seat kept by a panic would wedge the ledger for good.
func (l *Ledger) commitOwn(ctx context.Context, p *pending) {
	defer l.release()
	l.seatDeadline, _ = ctx.Deadline()
	defer func() { l.seatDeadline = time.Time{} }()
	l.drain(func() bool { return len(p.done) > 0 })
}

// holdSeat is how long the writer goroutine keeps the seat after its last batch. Records that
// arrive meanwhile are committed by it, as by a dedicated writer: under load the next commit
// starts as soon as the last one ends, instead of waiting until the caller who led it is
// rescheduled. Once records stop coming it gives the seat back to the callers.
const holdSeat = time.Millisecond

// run is the writer goroutine: it commits what callers queue while a commit is in progress
// (and keeps doing so while they keep coming), signs checkpoints when records stop coming, and
// runs ctl functions between batches.
func (l *Ledger) run() {
	defer close(l.done)
	tick := time.NewTicker(l.opts.CheckpointInterval / 4)
	defer tick.Stop()
	var syncC <-chan time.Time // relaxed commits made durable within RelaxedSyncBound
	if l.relaxed != nil {
		st := time.NewTicker(l.opts.RelaxedSyncBound / 2)
		defer st.Stop()
		syncC = st.C
	}
	idle := time.NewTimer(holdSeat)
	defer idle.Stop()
	held := false
	take := func() {
		if !held {
			l.token <- struct{}{}
			held = true
		}
	}
	for {
		select {
		case <-l.kick:
			take()
			l.drain(nil)
			idle.Reset(holdSeat)
		case f := <-l.ctl:
			take()
			f()
			idle.Reset(holdSeat)
		case <-tick.C:
			take()
			if l.size > l.cpSize && l.now().Sub(l.cpTime) >= l.opts.CheckpointInterval {
				l.commitBatch(nil)
			}
			idle.Reset(holdSeat)
		case <-syncC:
			if l.unsynced.Load() {
				take()
				l.syncRelaxed()
				idle.Reset(holdSeat)
			}
		case <-idle.C:
			if held {
				held = false
				l.release()
			}
		case <-l.stop:
			take()
			l.drain(nil)
			l.syncRelaxed()
			return // keeping the seat: nothing may commit after the last drain
		}
	}
}

// drain commits queued records, batch after batch, until the queue is empty or done reports
// true (checked before each batch). The caller holds the seat.
func (l *Ledger) drain(done func() bool) {
	for done == nil || !done() {
		var p *pending
		select {
		case p = <-l.q:
		default:
			return
		}
		if p.take(time.Now()) {
			l.runBatch(p)
		}
	}
}

// runBatch fills a batch that starts with p, commits it and answers its callers. Everything a
// batch runs on the seat holder's goroutine — fill, encode, the checkpoint signer (a KMS or HSM
// client may panic), the store's commit — is under one recover: a panic fails this batch (its
// callers are told ErrNotDurable and deny) and the next commit resyncs with the store, as after
// any failed commit.
func (l *Ledger) runBatch(p *pending) {
	l.batch = append(l.batch[:0], p)
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("%w: batch panicked: %v", ErrNotDurable, r)
			l.needResync = true
			l.fail(err)
			for _, q := range l.batch {
				if len(q.done) == 0 {
					q.done <- result{err: err}
				}
			}
		}
		clear(l.batch) // answered: keep no caller's record alive
		l.batchDeadline, l.batchRelaxed = time.Time{}, false
	}()
	l.batch = l.fill(l.batch)
	l.commitBatch(l.batch)
}

// release gives up the seat. Records queued meanwhile are not stranded: the callers who queued
// them found the seat taken and kicked the writer goroutine, which takes the seat next.
func (l *Ledger) release() { <-l.token }

// fill adds queued records to batch without waiting, up to the batch limit and never past the
// next record-count checkpoint, so a checkpoint lands exactly every CheckpointRecords.
func (l *Ledger) fill(batch []*pending) []*pending {
	limit := l.opts.MaxBatch
	if room := int(l.cpSize + uint64(l.opts.CheckpointRecords) - l.size); room > 0 && room < limit {
		limit = room
	}
	now := time.Now() // deadlines are the callers' contexts', on the wall clock
	for len(batch) < limit {
		select {
		case p := <-l.q:
			if p.take(now) {
				batch = append(batch, p)
			}
			continue
		default:
		}
		break
	}
	// Linger: when commits are slow (the fsync dominates), callers answered by the previous
	// commit are about to append again; waiting a fraction of a commit for them doubles the
	// batch instead of alternating two half-size cohorts. Bounded by Linger and by an eighth
	// of the last commit, so a fast disk or an idle ledger barely waits.
	// The target is the callers answered by the last commit plus those that were already
	// queued when it ended: with a fixed set of callers split into two alternating cohorts,
	// that is all of them. When nothing was queued, every record in this batch arrived after
	// the last commit, so it comes from the answered callers themselves: a lone caller
	// appending record after record is not kept waiting for a second caller that does not
	// exist (and a short timer costs the runtime's timer granularity, about 1 ms, not the
	// eighth of a commit asked for).
	wait := min(l.opts.Linger, l.lastCommit/8)
	target := min(limit, max(l.lastBatch, 1)+l.queuedEnd)
	if l.queuedEnd == 0 {
		target = min(limit, l.lastBatch)
	}
	if wait <= 0 || len(batch) >= target {
		return batch
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for len(batch) < target {
		select {
		case p := <-l.q:
			if p.take(now) {
				batch = append(batch, p)
			}
		case <-timer.C:
			return batch
		}
	}
	return batch
}

// syncRelaxed makes the relaxed commits durable (the caller holds the seat). A failed sync is
// the ledger's failure, as a failed commit is: the records may not be on disk.
func (l *Ledger) syncRelaxed() {
	if !l.unsynced.Load() {
		return
	}
	ctx, cancel := l.commitContext()
	defer cancel()
	if err := guarded(func() error { return l.relaxed.Sync(ctx) }); err != nil {
		l.needResync = true
		l.fail(fmt.Errorf("%w: sync of relaxed records: %v", ErrNotDurable, err))
		return
	}
	l.unsynced.Store(false)
}

// commitBatch commits batch (possibly empty: a checkpoint alone) and answers its callers.
func (l *Ledger) commitBatch(batch []*pending) {
	bodies := make([][]byte, len(batch))
	l.batchRelaxed = len(batch) > 0
	for i, p := range batch {
		l.batchRelaxed = l.batchRelaxed && p.relaxed
		bodies[i] = p.body
		if !p.deadline.IsZero() && (l.batchDeadline.IsZero() || p.deadline.Before(l.batchDeadline)) {
			l.batchDeadline = p.deadline
		}
	}
	first, err := l.commit(bodies, false)
	l.batchDeadline, l.batchRelaxed = time.Time{}, false
	for i, p := range batch {
		if err != nil {
			p.done <- result{err: err}
		} else {
			p.done <- result{seq: first + uint64(i)}
		}
	}
}

// commitTimeout bounds one commit. One caller's cancellation must not abort everyone's batch:
// the commit has its own context.
const commitTimeout = 30 * time.Second

// commitContext is a commit's context: commitTimeout, or sooner the deadline of the caller
// committing on its own goroutine (seatDeadline) or the earliest deadline of the batch's records
// (batchDeadline: a caller whose record a batch carries waits for that batch's answer). The
// other records in the batch then fail with it — they deny, which is what their callers would
// do at their own, similar, deadlines anyway (the guard gives every record the same bound).
func (l *Ledger) commitContext() (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(commitTimeout)
	if !l.seatDeadline.IsZero() && l.seatDeadline.Before(deadline) {
		deadline = l.seatDeadline
	}
	if !l.batchDeadline.IsZero() && l.batchDeadline.Before(deadline) {
		deadline = l.batchDeadline
	}
	return context.WithDeadline(context.Background(), deadline)
}

// commit encodes the bodies as the next records, adds a checkpoint when one is due (or
// forced), commits once and advances the writer state only on success. A panic on the way (in
// encode, the signer or the store) fails the commit like any error: the head is not advanced
// and the next commit resyncs.
func (l *Ledger) commit(bodies [][]byte, forceCheckpoint bool) (first uint64, err error) {
	defer func() {
		if r := recover(); r != nil {
			l.needResync = true
			err = fmt.Errorf("%w: commit panicked: %v", ErrNotDurable, r)
			l.fail(err)
		}
	}()
	return l.commitOnce(bodies, forceCheckpoint)
}

func (l *Ledger) commitOnce(bodies [][]byte, forceCheckpoint bool) (uint64, error) {
	if l.shared != nil {
		return l.commitShared(bodies, forceCheckpoint)
	}
	if l.needResync {
		if err := l.resync(); err != nil {
			l.fail(err)
			return 0, fmt.Errorf("%w: %v", ErrNotDurable, err)
		}
	}
	next := l.head
	next.tree = cloneRange(next.tree)
	first := next.size
	entries, cp, buf, err := l.encode(&next, bodies, forceCheckpoint)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNotDurable, err)
	}
	if len(entries) == 0 && cp == nil {
		return first, nil
	}
	ctx, cancel := l.commitContext()
	t0 := time.Now()
	relaxed := l.batchRelaxed && l.relaxed != nil
	if relaxed {
		err = guarded(func() error { return l.relaxed.CommitRelaxed(ctx, entries, cp) })
	} else {
		err = guarded(func() error { return l.st.Commit(ctx, entries, cp) })
	}
	cancel()
	l.committed(time.Since(t0), len(entries), buf)
	if err != nil {
		l.needResync = true
		l.fail(err)
		return 0, fmt.Errorf("%w: %v", ErrNotDurable, err)
	}
	l.batches.Add(1)
	// A durable commit makes the relaxed ones before it durable too (the store syncs its log).
	l.unsynced.Store(relaxed)
	l.adopt(next)
	if cp != nil && l.wit != nil {
		l.wit.offer(cp.Note)
	}
	return first, nil
}

// guarded runs a store's commit, turning a panic into an error: the commit may run on a
// caller's goroutine, whose recovery would otherwise leave the seat taken for good. The batch
// fails (its callers deny) and the next commit resyncs, as after any failed commit.
func guarded(commit func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store panicked: %v", r)
		}
	}()
	return commit()
}

// encode makes bodies the records after h, advancing h over them, and signs a checkpoint of
// the new size when one is due (or forced), which advances h's checkpoint too. The records are
// encoded into the writer's buffer, returned to hand to committed.
func (l *Ledger) encode(h *head, bodies [][]byte, forceCheckpoint bool) ([]Entry, *StoredCheckpoint, []byte, error) {
	entries := make([]Entry, len(bodies))
	buf := l.buf[:0]
	for i, b := range bodies {
		seq := h.size
		start := len(buf)
		if seq == 0 {
			buf = appendHeader(buf, seq, nil, b)
		} else {
			buf = appendHeader(buf, seq, h.lastLeaf[:], b)
		}
		entries[i] = Entry{Seq: seq, Data: buf[start:len(buf):len(buf)]}
		if err := h.advance(entries[i].Data); err != nil {
			return nil, nil, buf, err
		}
	}
	now := l.now()
	if h.size <= h.cpSize || !(forceCheckpoint || h.size-h.cpSize >= uint64(l.opts.CheckpointRecords) ||
		now.Sub(h.cpTime) >= l.opts.CheckpointInterval) {
		return entries, nil, buf, nil
	}
	n, err := SignCheckpoint(withTime(Checkpoint{Origin: l.origin, Size: h.size, Hash: rootOf(h.tree)}, now), l.signers...)
	if err != nil {
		return nil, nil, buf, err
	}
	h.cpSize, h.cpTime = h.size, now
	return entries, &StoredCheckpoint{Size: h.size, Note: n, Frontier: frontierBytes(h.tree)}, buf, nil
}

// committed notes how long a commit took and how many records it carried (for the linger),
// and keeps the encoding buffer for the next batch (stores copy what they keep).
func (l *Ledger) committed(took time.Duration, records int, buf []byte) {
	l.lastCommit, l.lastBatch, l.queuedEnd = took, records, len(l.q)
	if buf != nil && cap(buf) <= 1<<22 {
		l.buf = buf[:0]
	}
}

// adopt makes h the writer's head once its commit succeeded.
func (l *Ledger) adopt(h head) {
	l.head = h
	l.sizeA.Store(h.size)
	l.cpSizeA.Store(h.cpSize)
	l.lastErr.Store(nil)
}

func (l *Ledger) fail(err error) {
	l.failures.Add(1)
	l.lastErr.Store(&err)
}

// resync re-reads the store after a failed commit, whose effect is unknown (a failed sync may
// or may not have persisted). The writer continues only from a state it can prove.
func (l *Ledger) resync() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	size, err := l.st.Size(ctx)
	if err != nil {
		return fmt.Errorf("resync after a failed commit: %w", err)
	}
	cp, ok, err := l.st.LatestCheckpoint(ctx)
	if err != nil {
		return fmt.Errorf("resync after a failed commit: %w", err)
	}
	if ok && cp.Size > l.cpSize {
		// The failed commit did persist its checkpoint (and so its records).
		tr, err := rangeFromFrontier(cp.Size, cp.Frontier)
		if err != nil {
			return fmt.Errorf("resync after a failed commit: %w", err)
		}
		l.tree, l.cpSize = tr, cp.Size
		l.cpSizeA.Store(cp.Size)
	}
	if size == l.size && l.tree.End() == size {
		l.needResync = false
		return nil
	}
	// Records of the failed commit persisted after all: extend the tree over them.
	if size < l.size || size < l.tree.End() {
		return fmt.Errorf("%w: the store shrank from %d to %d records", ErrInconsistent, l.size, size)
	}
	from := l.tree.End()
	if from > 0 {
		if err := l.st.Scan(ctx, from-1, func(e Entry) error {
			l.lastLeaf = LeafHash(e.Data)
			return errStop
		}); err != nil && !errors.Is(err, errStop) {
			return fmt.Errorf("resync after a failed commit: %w", err)
		}
	}
	l.size = from
	err = l.st.Scan(ctx, from, func(e Entry) error {
		if err := l.checkTail(e); err != nil {
			return fmt.Errorf("%w: record %d: %v", ErrInconsistent, e.Seq, err)
		}
		return l.advance(e.Data)
	})
	if err != nil {
		return fmt.Errorf("resync after a failed commit: %w", err)
	}
	l.sizeA.Store(l.size)
	l.needResync = false
	return nil
}

// writeSystem encodes and commits one record the ledger writes itself, holding the seat (or
// from Open before the writer starts).
func (l *Ledger) writeSystem(r *Record, forceCheckpoint bool) error {
	r.Time = l.now()
	body, err := encodeBody(r)
	if err != nil {
		return err
	}
	_, err = l.commit([][]byte{body}, forceCheckpoint)
	return err
}

// do runs f on the writer goroutine, holding the seat, between batches.
func (l *Ledger) do(ctx context.Context, f func() error) error {
	errc := make(chan error, 1)
	select {
	case l.ctl <- func() { errc <- f() }:
	case <-l.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-errc
}

// Checkpoint commits a checkpoint now if records were appended since the last one.
func (l *Ledger) Checkpoint(ctx context.Context) error {
	return l.do(ctx, func() error {
		if l.size == l.cpSize {
			return nil
		}
		_, err := l.commit(nil, true)
		return err
	})
}

// RotateKey switches checkpoint signing to a new key kept in Options.KeyDir: it appends a
// key_rotation record naming both public keys and a checkpoint signed by both (the old key
// vouching for the new), then signs with the new key alone.
func (l *Ledger) RotateKey(ctx context.Context) (newVerifierKey string, err error) {
	if l.opts.KeyDir == "" {
		return "", errors.New("rotate ledger key: no key directory configured")
	}
	err = l.do(ctx, func() error {
		skey, vkey, err := prepareRotation(l.opts.KeyDir, l.origin)
		if err != nil {
			return err
		}
		ns, err := note.NewSigner(skey)
		if err != nil {
			return fmt.Errorf("rotate ledger key: %w", err)
		}
		oldV, err := verifierKeyOf(l.opts.KeyDir, l.signers[0])
		if err != nil {
			return err
		}
		l.signers = []note.Signer{l.signers[0], ns}
		err = l.writeSystem(&Record{Kind: KindKeyRotation, KeyRotation: &KeyRotation{OldKey: oldV, NewKey: vkey}}, true)
		if err != nil {
			l.signers = l.signers[:1]
			return fmt.Errorf("rotate ledger key: %w", err)
		}
		l.signers = []note.Signer{ns}
		newVerifierKey = vkey
		return finishRotation(l.opts.KeyDir)
	})
	return newVerifierKey, err
}

// verifierKeyOf finds the public key of s among the keys listed in dir.
func verifierKeyOf(dir string, s note.Signer) (string, error) {
	keys, err := ReadPublicKeys(dir + "/" + PublicKeysFile)
	if err != nil {
		return "", err
	}
	for _, k := range keys {
		v, err := note.NewVerifier(k)
		if err == nil && v.Name() == s.Name() && v.KeyHash() == s.KeyHash() {
			return k, nil
		}
	}
	return "", fmt.Errorf("rotate ledger key: public key of the current signer not found in %s", PublicKeysFile)
}

// Close stops taking records, commits what is queued, writes a shutdown record and a final
// checkpoint, and stops the writer. It does not close the store.
func (l *Ledger) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	var serr error
	err := l.do(ctx, func() error {
		l.drain(nil) // every record accepted before Close is answered
		serr = l.writeSystem(&Record{Kind: KindShutdown}, true)
		return nil
	})
	close(l.stop)
	<-l.done
	var werr error
	if l.wit != nil {
		werr = l.wit.close() // the final checkpoint reaches the witness before Close returns
	}
	if err != nil {
		return fmt.Errorf("close ledger: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("close ledger: shutdown record: %w", serr)
	}
	if werr != nil {
		return fmt.Errorf("close ledger: %w", werr)
	}
	return nil
}

// Stats are the ledger's metrics, read without locks.
type Stats struct {
	Size           uint64 `json:"size"`
	CheckpointSize uint64 `json:"checkpoint_size"`
	QueueDepth     int    `json:"queue_depth"`
	QueueCapacity  int    `json:"queue_capacity"`
	Batches        uint64 `json:"batches"`
	Failures       uint64 `json:"failures"`
}

// Stats returns the current metrics.
func (l *Ledger) Stats() Stats {
	return Stats{Size: l.sizeA.Load(), CheckpointSize: l.cpSizeA.Load(), QueueDepth: len(l.q),
		QueueCapacity: cap(l.q), Batches: l.batches.Load(), Failures: l.failures.Load()}
}

// QueueDepth is the number of records waiting for the writer.
func (l *Ledger) QueueDepth() int { return len(l.q) }

// Err returns the last write failure, or nil once a commit has succeeded since (for health);
// else the witness's last write failure, until a witness write succeeds.
func (l *Ledger) Err() error {
	if p := l.lastErr.Load(); p != nil {
		return *p
	}
	if l.wit != nil {
		return l.wit.Err()
	}
	return nil
}

// Origin is the log's origin line (its signing key's name).
func (l *Ledger) Origin() string { return l.origin }
