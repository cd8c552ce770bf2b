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
	recs   [][]byte
	cps    []ledger.StoredCheckpoint
	closed bool
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
		if r.Seq != uint64(len(s.recs)+i) {
			return fmt.Errorf("memory store commit: record %d: %w", r.Seq, ledger.ErrConflict)
		}
	}
	if cp != nil && cp.Size > uint64(len(s.recs)+len(recs)) {
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
	return uint64(len(s.recs)), nil
}

// Scan implements ledger.Store.
func (s *Store) Scan(ctx context.Context, from uint64, fn func(ledger.Entry) error) error {
	for i := from; ; i++ {
		s.mu.RLock()
		if i >= uint64(len(s.recs)) {
			s.mu.RUnlock()
			return nil
		}
		d := s.recs[i]
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
	if from < uint64(len(s.recs)) {
		s.recs = s.recs[:from]
	}
	return nil
}

// Close implements ledger.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// Raw exposes the stored records and checkpoints for tests that tamper with them. Changes
// through the returned slices change the store.
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
