package postgres

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// archiveLockSpace is the high half of archive lock keys; the low half is the ledger table's
// oid, as for the writer lock, so two schemas' archivers never contend.
const archiveLockSpace = 0x61726368 // "arch"

var _ ledger.ArchiveLocker = (*Ledger)(nil)

// TryLockArchive implements ledger.ArchiveLocker with a session advisory lock keyed to this
// ledger, taken on a connection set aside from the pool until the release: every replica and
// every `audit archive` on the ledger asks the same lock, and a holder that dies (its session
// ends) releases it. The holding session's application_name names the archiver, which is how
// the next one names the holder.
func (s *Ledger) TryLockArchive(ctx context.Context) (func(), error) {
	key := archiveLockSpace<<32 | s.lock&0xffffffff
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres archive lock: %w", err)
	}
	// Taken out of the pool for as long as the lock is held (the whole archive run), so that the
	// pool — whose max_conns may be 1 — keeps serving the ledger, the approvals and the archiver's
	// own queries; closed at the release, which also ends the lock.
	conn := pc.Hijack()
	closeConn := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = conn.Close(ctx)
	}
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&got); err != nil {
		closeConn()
		return nil, fmt.Errorf("postgres archive lock: %w", err)
	}
	if !got {
		closeConn()
		var holder string
		err := s.pool.QueryRow(ctx, `SELECT format('PostgreSQL session %s, %s, from %s, since %s', a.pid,
				COALESCE(NULLIF(a.application_name, ''), 'no application name'), COALESCE(host(a.client_addr), 'a local socket'),
				to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
			FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
				AND l.classid::bigint = $1 AND l.objid::bigint = $2 LIMIT 1`,
			key>>32, key&0xffffffff).Scan(&holder)
		if err != nil {
			holder = "" // gone since, or not visible to this role: the lock is busy all the same
		}
		return nil, &ledger.ArchiveBusyError{Holder: holder}
	}
	host, _ := os.Hostname()
	_, _ = conn.Exec(ctx, "SELECT set_config('application_name', $1, false)",
		fmt.Sprintf("portcullis archiver pid %d on %s since %s", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339)))
	return closeConn, nil
}
