package ledger

import (
	"context"
	"errors"
	"sync"
)

// Defaults of NewRecent.
const (
	DefaultRecentRecords = 4096
	DefaultRecentBytes   = 8 << 20
)

// Recent keeps the newest records this process committed, exactly as stored, so that the
// readers that follow the log in the same process (alert rules, the audit index, exports) take
// them from memory instead of reading each back from the store. It is bounded in records and in
// bytes: what it no longer holds — a reader fell behind, records committed before the process
// started, records another writer (a replica on a shared store) committed — is read from the
// store, so a slow reader costs a store read, never unbounded memory, and nothing is missed.
// It holds one contiguous run of seqs: a gap (another writer's records) starts it afresh.
// The records kept from one commit share one copy of their bytes, at most the byte bound (add
// copies only the tail of a commit that it keeps), and that copy stays alive until its last
// record is evicted. Eviction takes the oldest first, so only the oldest commit held can be
// partly evicted: the memory held is below twice the byte bound (16 MiB with the defaults).
type Recent struct {
	maxRecords, maxBytes int

	mu    sync.RWMutex
	ring  []Entry // ring[(head+i)%len(ring)] has seq first+i, for i < n
	head  int
	n     int
	first uint64
	bytes int
}

// NewRecent returns a Recent holding at most maxRecords records and maxBytes bytes of them
// (<= 0: the defaults).
func NewRecent(maxRecords, maxBytes int) *Recent {
	if maxRecords <= 0 {
		maxRecords = DefaultRecentRecords
	}
	if maxBytes <= 0 {
		maxBytes = DefaultRecentBytes
	}
	return &Recent{maxRecords: maxRecords, maxBytes: maxBytes, ring: make([]Entry, maxRecords)}
}

// add keeps a copy of entries, just committed. It runs on the committing goroutine (possibly
// a decision's), so it only copies: one allocation for the bytes of the records it keeps.
// Only the commit's tail that fits in the bounds is copied — the records before it would be
// evicted by the end of this call anyway — so a commit larger than the bounds neither costs
// its whole size in copying nor keeps its whole size alive behind the few records kept.
func (r *Recent) add(entries []Entry) {
	if r == nil || len(entries) == 0 {
		return
	}
	// The records kept after this call are the longest run ending at the commit's last record
	// that is contiguous in seq, holds no record over maxBytes and fits both bounds: eviction
	// from the front, record by record, ends there. Find where that run starts in the commit.
	start, total := len(entries), 0
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if len(e.Data) > r.maxBytes || len(entries)-i > r.maxRecords || total+len(e.Data) > r.maxBytes {
			break
		}
		if i+1 < len(entries) && e.Seq+1 != entries[i+1].Seq {
			break // another writer's records lie between: the run starts after them
		}
		start, total = i, total+len(e.Data)
	}
	tail := entries[start:]
	slab := make([]byte, 0, total)
	for _, e := range tail {
		slab = append(slab, e.Data...)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if start > 0 {
		// The run does not reach the commit's first record: whatever was held before is
		// evicted, past a gap or a record too large to keep. Readers take those from the store.
		r.reset()
	}
	off := 0
	for _, e := range tail {
		if r.n > 0 && e.Seq != r.first+uint64(r.n) {
			r.reset() // not contiguous: another writer's records lie between
		}
		if r.n == 0 {
			r.first = e.Seq
		}
		for r.n == r.maxRecords || r.bytes+len(e.Data) > r.maxBytes {
			r.evict()
		}
		end := off + len(e.Data)
		r.ring[(r.head+r.n)%len(r.ring)] = Entry{Seq: e.Seq, Data: slab[off:end:end]}
		off = end
		r.n++
		r.bytes += len(e.Data)
	}
}

// evict drops the oldest record.
func (r *Recent) evict() {
	r.bytes -= len(r.ring[r.head].Data)
	r.ring[r.head] = Entry{}
	r.head = (r.head + 1) % len(r.ring)
	r.n--
	r.first++
}

func (r *Recent) reset() {
	clear(r.ring)
	r.head, r.n, r.bytes = 0, 0, 0
}

// read appends to dst the records held from seq from on, at most max of them; none when from
// is not held.
func (r *Recent) read(dst []Entry, from uint64, max int) []Entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.n == 0 || from < r.first || from >= r.first+uint64(r.n) {
		return dst
	}
	off := int(from - r.first)
	for i := off; i < r.n && len(dst) < max; i++ {
		dst = append(dst, r.ring[(r.head+i)%len(r.ring)])
	}
	return dst
}

// Span reports the seqs held, [first, end); empty when first == end.
func (r *Recent) Span() (first, end uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.first, r.first + uint64(r.n)
}

// Follow returns a view of st for a reader that follows the log: Scan takes what r holds from
// memory and reads the rest from st. Its Scan ends at the size its Size last reported when r
// held the records up to there — a follower reads Size, then Scans up to it, and takes newer
// records on its next round — so a caught-up reader does not query the store for nothing.
// Base and Prune reach st's when st is a Pruner (Base reports nothing pruned otherwise).
func Follow(st View, r *Recent) *Follower {
	return &Follower{st: st, r: r}
}

// Follower is the view Follow returns.
type Follower struct {
	st View
	r  *Recent

	mu   sync.Mutex
	size uint64 // the size Size last reported

	storeScans, memRecords uint64 // for tests and metrics, under mu
}

var (
	_ View   = (*Follower)(nil)
	_ Pruner = (*Follower)(nil)
)

// Size is the store's size.
func (f *Follower) Size(ctx context.Context) (uint64, error) {
	n, err := f.st.Size(ctx)
	if err == nil {
		f.mu.Lock()
		f.size = n
		f.mu.Unlock()
	}
	return n, err
}

// LatestCheckpoint is the store's.
func (f *Follower) LatestCheckpoint(ctx context.Context) (StoredCheckpoint, bool, error) {
	return f.st.LatestCheckpoint(ctx)
}

// followChunk is how many records Scan copies out of Recent at once (under its read lock).
const followChunk = 256

// Scan calls fn for the records from seq from on: those Recent holds from memory, then the
// rest from the store.
func (f *Follower) Scan(ctx context.Context, from uint64, fn func(e Entry) error) error {
	next := from
	var buf []Entry
	mem := uint64(0)
	for {
		buf = f.r.read(buf[:0], next, followChunk)
		if len(buf) == 0 {
			break
		}
		for _, e := range buf {
			mem++
			if err := fn(e); err != nil {
				f.count(mem, false)
				return err
			}
			next = e.Seq + 1
		}
	}
	f.mu.Lock()
	known := f.size
	f.mu.Unlock()
	if mem > 0 && next >= known {
		f.count(mem, false)
		return nil
	}
	f.count(mem, true)
	return f.st.Scan(ctx, next, fn)
}

func (f *Follower) count(mem uint64, store bool) {
	f.mu.Lock()
	f.memRecords += mem
	if store {
		f.storeScans++
	}
	f.mu.Unlock()
}

// FollowStats counts what a Follower served: records from memory, and scans that read the
// store.
type FollowStats struct{ Memory, StoreScans uint64 }

// Stats returns the counters.
func (f *Follower) Stats() FollowStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return FollowStats{Memory: f.memRecords, StoreScans: f.storeScans}
}

// errNotPruner: Prune through a Follower of a store that cannot prune.
var errNotPruner = errors.New("ledger store cannot prune")

// Base is the store's when it is a Pruner; otherwise nothing was pruned.
func (f *Follower) Base(ctx context.Context) (uint64, []byte, bool, error) {
	if p, ok := f.st.(Pruner); ok {
		return p.Base(ctx)
	}
	return 0, nil, false, nil
}

// Prune is the store's when it is a Pruner.
func (f *Follower) Prune(ctx context.Context, size uint64, base []byte) error {
	if p, ok := f.st.(Pruner); ok {
		return p.Prune(ctx, size, base)
	}
	return errNotPruner
}
