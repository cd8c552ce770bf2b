package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// ArchiveDir is where the ledger's archives go unless ledger.retention.dir says otherwise.
func ArchiveDir(cfg *config.Config, dataDir string) string {
	if d := cfg.Ledger.Retention.Dir; d != "" {
		return d
	}
	return filepath.Join(dataDir, "archive")
}

// RetentionOptions are what ledger.ApplyRetention needs from the configuration.
func RetentionOptions(cfg *config.Config, keys []string) (ledger.Retention, ledger.VerifyOptions) {
	r := cfg.Ledger.Retention
	return ledger.Retention{MaxAge: r.MaxAge, MaxRecords: uint64(r.MaxRecords)},
		ledger.VerifyOptions{Keys: keys, CheckpointInterval: cfg.Ledger.CheckpointInterval, CheckpointRecords: cfg.Ledger.CheckpointRecords}
}

// startRetention archives and prunes the ledger on ledger.retention's schedule, the first time
// a minute after start (not on the start's path). A failed run is logged and retried at the
// next; the records stay in the live ledger meanwhile.
func startRetention(st ledger.Store, cfg *config.Config, keys []string, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	interval := cfg.Ledger.Retention.Interval
	if interval <= 0 {
		interval = time.Hour
	}
	dir := ArchiveDir(cfg, cfg.DataDir)
	r, opts := RetentionOptions(cfg, keys)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTimer(min(time.Minute, interval))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			res, err := ledger.ApplyRetention(ctx, st, dir, r, 0, uint64(cfg.Ledger.Retention.SegmentRecords), time.Now(), opts)
			for _, a := range res {
				log.Info("ledger archived", slog.String("archive", a.Archive), slog.Uint64("from", a.From), slog.Uint64("to", a.To), slog.Int64("bytes", a.Bytes))
			}
			switch {
			case errors.Is(err, ledger.ErrArchiveBusy):
				// Another replica's retention or an `audit archive` holds the ledger: it does this
				// period's work; this one looks again at the next.
				log.Info("ledger retention skipped: another archiver is at work", slog.Any("reason", err))
			case err != nil && ctx.Err() == nil:
				log.Error("ledger retention", slog.Any("error", err))
			}
			t.Reset(interval)
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// lockedLedger is the SQLite ledger of a data directory opened for writing by a command, with
// the directory's writer lock held until Close.
type lockedLedger struct {
	*sqlite.Ledger
	unlock func()
}

func (l lockedLedger) Close() error {
	defer l.unlock()
	return l.Ledger.Close()
}

// OpenLedgerStoreForArchive opens the existing ledger for `audit archive`, which prunes it. A
// SQLite ledger is the gateway's own file: the command takes the data directory's writer lock
// (a running gateway archives by itself with ledger.retention). A PostgreSQL ledger is pruned
// under its writer lock while replicas run.
func OpenLedgerStoreForArchive(ctx context.Context, cfg *config.Config, dataDir string) (ledger.Store, error) {
	if cfg.Store.Ledger == config.StorePostgres {
		return OpenLedgerStore(ctx, cfg, dataDir)
	}
	path := filepath.Join(dataDir, LedgerFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%s: cannot read the ledger: %w", path, err)
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	st, err := sqlite.OpenLedger(path)
	if err != nil {
		unlock()
		return nil, err
	}
	return lockedLedger{st, unlock}, nil
}
