package ledger

import (
	"context"
	"errors"
)

// Entry is one stored record: its seq and the exact bytes that were hashed.
type Entry struct {
	Seq  uint64
	Data []byte
}

// StoredCheckpoint is one signed checkpoint as kept by a store.
type StoredCheckpoint struct {
	Size uint64
	// Note is the signed note exactly as signed (C2SP tlog-checkpoint text plus signature lines).
	Note []byte
	// Frontier is the compact range of the tree at Size (the roots of its perfect subtrees,
	// left to right, 32 bytes each, concatenated). It lets a restart continue the tree without
	// rereading every record; it is checked against the signed root before use and is never
	// trusted by verification.
	Frontier []byte
}

// RelaxedStore is a Store that can also commit without waiting for the disk: CommitRelaxed is
// Commit (one atomic commit, visible when it returns nil) whose write has reached the operating
// system but not necessarily the disk — it survives the process being killed, not a power loss —
// until the next Commit or Sync makes it, and everything before it, durable.
type RelaxedStore interface {
	CommitRelaxed(ctx context.Context, recs []Entry, cp *StoredCheckpoint) error
	Sync(ctx context.Context) error
}

// Store keeps records and checkpoints durably. Implementations live in internal/store/...
// and must pass internal/store/storetest unchanged.
type Store interface {
	// Commit appends records (contiguous, the first with Seq equal to the current size) and,
	// when cp is not nil, a checkpoint, in ONE atomic commit that is durable when Commit returns
	// nil. On error nothing of the call may be visible afterwards — or, if the store cannot
	// know (a failed sync), the caller re-reads Size to find out. A first Seq other than the
	// current size fails with ErrConflict and changes nothing.
	Commit(ctx context.Context, recs []Entry, cp *StoredCheckpoint) error
	// Size returns the number of records (the next seq).
	Size(ctx context.Context) (uint64, error)
	// Scan calls fn for each record with seq >= from in ascending seq order, until the end or
	// until fn returns an error, which Scan returns unchanged. e.Data is valid only during fn.
	Scan(ctx context.Context, from uint64, fn func(e Entry) error) error
	// Checkpoints calls fn for each checkpoint in the order they were committed.
	Checkpoints(ctx context.Context, fn func(cp StoredCheckpoint) error) error
	// LatestCheckpoint returns the last committed checkpoint; ok is false when there is none.
	LatestCheckpoint(ctx context.Context) (cp StoredCheckpoint, ok bool, err error)
	// Trim removes the records with seq >= from. It exists only for start-up recovery of a torn
	// tail and fails with ErrTrimCheckpointed (changing nothing) when a checkpoint covers them.
	Trim(ctx context.Context, from uint64) error
	// Close releases the store.
	Close() error
}

// Store errors callers branch on.
var (
	// ErrConflict: a commit did not start at the store's current size (another writer, or a
	// writer whose view is stale).
	ErrConflict = errors.New("ledger store: commit does not start at the current size")
	// ErrTrimCheckpointed: a trim would remove records a checkpoint covers.
	ErrTrimCheckpointed = errors.New("ledger store: trim would remove checkpointed records")
)

// View reads a log: a Store, or — inside SharedStore.CommitExclusive — the log as the writer
// holding the lock sees it.
type View interface {
	Size(ctx context.Context) (uint64, error)
	Scan(ctx context.Context, from uint64, fn func(e Entry) error) error
	LatestCheckpoint(ctx context.Context) (cp StoredCheckpoint, ok bool, err error)
}

// SharedStore is a Store that several ledgers — gateway replicas — append to at once. A ledger
// whose store has it commits only through CommitExclusive: under the lock it reads what other
// writers appended since its own last commit, checks their chain, and chains its batch onto
// the true end of the log. Stores with a single writer (SQLite) do not implement it and keep
// the plain Commit path.
type SharedStore interface {
	Store
	// CommitExclusive holds the store's writer lock — one holder at a time, across every
	// process — for one commit: fn reads the log through v, sees every commit made before the
	// lock was taken, and returns the records (contiguous from v's size) and the checkpoint
	// (or nil) to commit on top of it, atomically, before the lock is released. Empty records
	// and a nil checkpoint commit nothing. An error from fn aborts the commit and is returned
	// (wrapped); otherwise errors are those of Commit, ErrConflict included.
	CommitExclusive(ctx context.Context, fn func(v View) ([]Entry, *StoredCheckpoint, error)) error
}
