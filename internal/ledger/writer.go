package ledger

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

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
	l.opts.Recent.add(entries) // before l.buf, which entries are slices of, is written again
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
