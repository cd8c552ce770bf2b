package ledger

import "context"

// ArchiveAndPrune is one step of ApplyRetention — archive and prune up to to, a stored
// checkpoint's size — under the archive lock, so that tests can cut the log exactly where they
// mean to.
func ArchiveAndPrune(ctx context.Context, st Store, dir string, to uint64, opts VerifyOptions) (ArchiveResult, error) {
	unlock, err := lockArchive(ctx, st)
	if err != nil {
		return ArchiveResult{}, err
	}
	defer unlock()
	return archiveAndPrune(ctx, st, dir, to, opts)
}

// SetCatchUpScanMax sets how far behind a shared writer may be before it restarts its head from
// the latest checkpoint, for the length of a test; it returns the function that restores it.
func SetCatchUpScanMax(n uint64) (restore func()) {
	old := catchUpScanMax
	catchUpScanMax = n
	return func() { catchUpScanMax = old }
}

// SetWriteVersion makes the ledger write records in format version v, as a binary of that
// version did, for the length of a test; it returns the function that restores it.
func SetWriteVersion(v int) (restore func()) {
	old := writeVersion
	writeVersion = v
	return func() { writeVersion = old }
}
