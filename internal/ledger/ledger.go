package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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

	// Recent, when set, keeps a copy of each record this ledger commits, for the readers that
	// follow the log in this process (Follow).
	Recent *Recent

	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Message is written in the startup record (e.g. the binary's version).
	Message string
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
	l.redact.applyInputs(r)
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
