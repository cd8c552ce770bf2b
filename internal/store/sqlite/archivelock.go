package sqlite

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

var _ ledger.ArchiveLocker = (*Ledger)(nil)

// TryLockArchive implements ledger.ArchiveLocker with a lock file beside the database
// (ledger.db.archive-lock), so that two handles on one file — in one process or two — never
// archive and prune at once. The holder writes its pid, host and start time into the file for
// the error the next archiver reports.
func (s *Ledger) TryLockArchive(context.Context) (func(), error) {
	path := s.path + ".archive-lock"
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("archive lock: %w", err)
	}
	busy, err := tryLockFile(f)
	if err != nil || busy {
		defer f.Close()
		if err != nil {
			return nil, fmt.Errorf("archive lock %s: %w", path, err)
		}
		b := make([]byte, 256)
		n, _ := f.ReadAt(b, 0)
		return nil, &ledger.ArchiveBusyError{Holder: strings.TrimSpace(string(b[:n]))}
	}
	host, _ := os.Hostname()
	if err := f.Truncate(0); err == nil {
		_, _ = fmt.Fprintf(f, "pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	}
	return func() {
		_ = f.Truncate(0)
		unlockFile(f)
		f.Close()
	}, nil
}
