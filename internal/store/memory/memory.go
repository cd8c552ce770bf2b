// Package memory is an in-memory ledger.Store: for tests and for ephemeral gateways that
// accept losing their ledger on exit. It passes internal/store/storetest like every store.
// It must not import anything but the ledger's interface.
package memory

import (
	"context"
	"fmt"
	"sync"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// Store keeps records and checkpoints in memory.
type Store struct {
	mu     sync.RWMutex
	off    uint64   // records pruned: recs[0] is record off
	recs   [][]byte // records from off
	base   []byte   // the base the latest Prune kept
	cps    []ledger.StoredCheckpoint
	closed bool
	// archiving is the archive lock (ledger.ArchiveLocker), held across an archive and its prune.
	archiving sync.Mutex
}

var _ ledger.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store { return &Store{} }

// Commit implements ledger.Store.
func (s *Store) Commit(_ context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memory store commit: closed")
	}
	for i, r := range recs {
		if r.Seq != s.off+uint64(len(s.recs)+i) {
			return fmt.Errorf("memory store commit: record %d: %w", r.Seq, ledger.ErrConflict)
		}
	}
	if cp != nil && cp.Size > s.off+uint64(len(s.recs)+len(recs)) {
		return fmt.Errorf("memory store commit: checkpoint of size %d beyond the records", cp.Size)
	}
	for _, r := range recs {
		s.recs = append(s.recs, append([]byte(nil), r.Data...))
	}
	if cp != nil {
		s.cps = append(s.cps, ledger.StoredCheckpoint{Size: cp.Size, Note: append([]byte(nil), cp.Note...),
			Frontier: append([]byte(nil), cp.Frontier...)})
	}
	return nil
}

// Size implements ledger.Store.
func (s *Store) Size(context.Context) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.off + uint64(len(s.recs)), nil
}

// Scan implements ledger.Store.
func (s *Store) Scan(ctx context.Context, from uint64, fn func(ledger.Entry) error) error {
	for i := from; ; i++ {
		s.mu.RLock()
		i = max(i, s.off)
		if i >= s.off+uint64(len(s.recs)) {
			s.mu.RUnlock()
			return nil
		}
		d := s.recs[i-s.off]
		s.mu.RUnlock()
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(ledger.Entry{Seq: i, Data: d}); err != nil {
			return err
		}
	}
}

// Checkpoints implements ledger.Store.
func (s *Store) Checkpoints(_ context.Context, fn func(ledger.StoredCheckpoint) error) error {
	s.mu.RLock()
	cps := append([]ledger.StoredCheckpoint(nil), s.cps...)
	s.mu.RUnlock()
	for _, c := range cps {
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

// LatestCheckpoint implements ledger.Store.
func (s *Store) LatestCheckpoint(context.Context) (ledger.StoredCheckpoint, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.cps) == 0 {
		return ledger.StoredCheckpoint{}, false, nil
	}
	return s.cps[len(s.cps)-1], true, nil
}

// Trim implements ledger.Store.
func (s *Store) Trim(_ context.Context, from uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cps {
		if c.Size > from {
			return fmt.Errorf("memory store trim from %d: %w", from, ledger.ErrTrimCheckpointed)
		}
	}
	if from < s.off+uint64(len(s.recs)) {
		s.recs = s.recs[:max(from, s.off)-s.off]
	}
	return nil
}

var _ ledger.Pruner = (*Store)(nil)

// Prune implements ledger.Pruner.
func (s *Store) Prune(_ context.Context, size uint64, base []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if size <= s.off {
		return nil
	}
	found := false
	for _, c := range s.cps {
		found = found || c.Size == size
	}
	if !found || size > s.off+uint64(len(s.recs)) {
		return fmt.Errorf("memory store prune to %d: %w", size, ledger.ErrPruneNoCheckpoint)
	}
	s.recs = append([][]byte(nil), s.recs[size-s.off:]...)
	s.off = size
	var kept []ledger.StoredCheckpoint
	for _, c := range s.cps {
		if c.Size >= size {
			kept = append(kept, c)
		}
	}
	s.cps = kept
	s.base = append([]byte(nil), base...)
	return nil
}

// Base implements ledger.Pruner.
func (s *Store) Base(context.Context) (uint64, []byte, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.off == 0 {
		return 0, nil, false, nil
	}
	return s.off, append([]byte(nil), s.base...), true, nil
}

// Close implements ledger.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// Raw exposes the stored records and checkpoints for tests that tamper with them. Changes
// through the returned slices change the store. After a Prune, (*recs)[0] is the record at the
// base.
func (s *Store) Raw() (recs *[][]byte, cps *[]ledger.StoredCheckpoint) {
	return &s.recs, &s.cps
}

// Shared is a Store that several ledgers in one process append to at once, the way gateway
// replicas share a PostgreSQL ledger: CommitExclusive holds a writer lock across the reads and
// the commit. For tests of the shared-writer path without a database.
type Shared struct {
	*Store
	writer sync.Mutex
}

var _ ledger.SharedStore = (*Shared)(nil)

// NewShared returns an empty shared store.
func NewShared() *Shared { return &Shared{Store: New()} }

// CommitExclusive implements ledger.SharedStore.
func (s *Shared) CommitExclusive(ctx context.Context, fn func(ledger.View) ([]ledger.Entry, *ledger.StoredCheckpoint, error)) error {
	s.writer.Lock()
	defer s.writer.Unlock()
	recs, cp, err := fn(s.Store)
	if err != nil {
		return fmt.Errorf("memory store commit: %w", err)
	}
	if len(recs) == 0 && cp == nil {
		return nil
	}
	return s.Store.Commit(ctx, recs, cp)
}

var _ ledger.ArchiveLocker = (*Store)(nil)

// TryLockArchive implements ledger.ArchiveLocker: one archiver at a time in this process.
func (s *Store) TryLockArchive(context.Context) (func(), error) {
	if !s.archiving.TryLock() {
		return nil, &ledger.ArchiveBusyError{}
	}
	return s.archiving.Unlock, nil
}
