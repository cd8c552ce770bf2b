package identity

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FileNonceStore is a NonceStore that survives a restart of the process: the nonces are checked
// in memory (a MemoryNonceStore, compact digests) and every fresh one is appended to a journal in dir before Use
// returns, so a request signed before a restart is still a replay after it.
//
// Why a journal and not a database table: a nonce is written once per signed request, on the
// request's critical path, and read back only at start. One write(2) of a short line costs a few
// microseconds; an SQL upsert with its B-tree and WAL pages cost two hundred, a third of a
// signed decision's CPU. The journal is not fsynced per line: a line written before the process
// is killed is in the page cache and survives it; only a power loss of the host in the moments
// after a write can lose it (the ledger's own records are fsynced, the nonces are not).
//
// The journal is split by expiry into files of one ttl each (nonces-<bucket>.log, bucket =
// expiry / ttl), so that a file whose every entry has expired is deleted whole and nothing is
// ever compacted. A torn last line (the process killed mid-write) is ignored at load: the request
// it recorded never got its answer.
//
// The store is for one process: two processes on one data directory do not see each other's
// nonces (use Redis for several processes).
type FileNonceStore struct {
	dir string
	mem digestMemory
	now func() time.Time

	mu     sync.Mutex // guards the open journal file and its bucket
	f      *os.File
	bucket int64
	width  time.Duration // the bucket width: the ttl of the first Use (ttls are equal for one verifier)
	buf    []byte
	closed bool
}

var _ NonceStore = (*FileNonceStore)(nil)

const nonceFilePrefix, nonceFileSuffix = "nonces-", ".log"

// OpenFileNonceStore opens (creating it if needed) the journal directory dir, loads the nonces
// that have not expired, and deletes the files whose nonces all have. now is the clock (time.Now
// if nil).
func OpenFileNonceStore(dir string, now func() time.Time) (*FileNonceStore, error) {
	return OpenFileNonceStoreWidth(dir, 0, now)
}

// digestMemory is the in-memory check behind a journal: MemoryNonceStore or MemoryClaimStore.
type digestMemory interface {
	NonceStore
	restore(key string, exp time.Time)
	forgottenBefore() int64
	Sweep()
	Len() int
}

// OpenFileNonceStoreWidth is OpenFileNonceStore with journal files width wide (0: the ttl of the
// first Use). A store whose ttls vary needs a fixed width: a file's name is its bucket index,
// read back with the width of the process reading it, and under another width a file of live
// entries looks long expired and is deleted.
func OpenFileNonceStoreWidth(dir string, width time.Duration, now func() time.Time) (*FileNonceStore, error) {
	mem := NewMemoryNonceStore(now) // with now nil, on the wall clock with its step guard
	if now == nil {
		now = time.Now
	}
	return openFileStore(dir, width, now, mem)
}

// OpenFileClaimStore is OpenFileNonceStoreWidth for outcome claims: the journal the same, the
// claims in memory as 8-byte digests (MemoryClaimStore), which their hour's lifetime makes worth
// it. The store holds at most maxClaims (0: DefaultMaxClaims); beyond, Use fails.
func OpenFileClaimStore(dir string, width time.Duration, maxClaims int, now func() time.Time) (*FileNonceStore, error) {
	mem := NewMemoryClaimStoreMax(now, maxClaims) // with now nil, on the wall clock with its step guard
	if now == nil {
		now = time.Now
	}
	return openFileStore(dir, width, now, mem)
}

func openFileStore(dir string, width time.Duration, now func() time.Time, mem digestMemory) (*FileNonceStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open nonce journal: %w", err)
	}
	s := &FileNonceStore{dir: dir, mem: mem, now: now, width: width}
	names, err := filepath.Glob(filepath.Join(dir, nonceFilePrefix+"*"+nonceFileSuffix))
	if err != nil {
		return nil, fmt.Errorf("open nonce journal: %w", err)
	}
	t := now()
	for _, name := range names {
		live, err := s.load(name, t)
		if err != nil {
			return nil, fmt.Errorf("open nonce journal: %w", err)
		}
		if live == 0 {
			if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("open nonce journal: %w", err)
			}
		}
	}
	return s, nil
}

// Adopt remembers the live entries of another journal directory whose key keep accepts, and
// journals them again in this store's own files: it carries entries over when keys move to a
// store of their own. Journaled here, they outlive the other directory's files, which its own
// store may delete by its own bucket width (as long expired) once it rotates; an entry adopted at
// every start is written again each time, which costs a line, not a second use.
func (s *FileNonceStore) Adopt(dir string, keep func(key string) bool) error {
	names, err := filepath.Glob(filepath.Join(dir, nonceFilePrefix+"*"+nonceFileSuffix))
	if err != nil {
		return fmt.Errorf("adopt nonce journal: %w", err)
	}
	t := s.now()
	var adopted []journalEntry
	for _, name := range names {
		if _, err := s.loadIf(name, t, func(key string, exp time.Time) bool {
			if !keep(key) {
				return false
			}
			adopted = append(adopted, journalEntry{key, exp})
			return true
		}); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("adopt nonce journal: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("adopt nonce journal: closed: %w", ErrUnavailable)
	}
	if s.width == 0 && len(adopted) > 0 {
		// Entries of varying lifetimes need files of a fixed width (OpenFileNonceStoreWidth):
		// the first one's remaining lifetime would set it, and later files would be read back
		// under another width as long expired.
		return errors.New("adopt nonce journal: the store has no fixed file width")
	}
	for _, e := range adopted {
		if err := s.journalLocked(e.key, e.exp, e.exp.Sub(t)); err != nil {
			return fmt.Errorf("adopt nonce journal: %w", err)
		}
	}
	return nil
}

// journalEntry is one live line of a journal.
type journalEntry struct {
	key string
	exp time.Time
}

// load reads one journal file into memory and returns how many of its nonces are still live.
func (s *FileNonceStore) load(name string, now time.Time) (int, error) {
	return s.loadIf(name, now, nil)
}

// loadIf is load of the entries keep accepts (all when keep is nil).
func (s *FileNonceStore) loadIf(name string, now time.Time, keep func(key string, exp time.Time) bool) (int, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, err
	}
	live := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break // a torn last line: never acknowledged
		}
		line := b[:i]
		b = b[i+1:]
		exp, key, ok := parseNonceLine(line)
		if !ok || !now.Before(exp) || (keep != nil && !keep(key, exp)) {
			continue
		}
		s.mem.restore(key, exp)
		live++
	}
	return live, nil
}

// parseNonceLine reads "<expiry unix nanoseconds> <base64url key>".
func parseNonceLine(line []byte) (time.Time, string, bool) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return time.Time{}, "", false
	}
	ns, err := strconv.ParseInt(string(line[:sp]), 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	key, err := base64.RawURLEncoding.DecodeString(string(line[sp+1:]))
	if err != nil || len(key) == 0 {
		return time.Time{}, "", false
	}
	return time.Unix(0, ns), string(key), true
}

// Use checks key in memory and, when it is fresh, appends it to the journal before answering. A
// journal that cannot be written is an error (the request is denied); the nonce stays used in
// memory, so the same signature is refused either way.
func (s *FileNonceStore) Use(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("nonce journal: ttl %v: %w", ttl, ErrUnavailable)
	}
	fresh, err := s.mem.Use(ctx, key, ttl)
	if err != nil || !fresh {
		return fresh, err
	}
	exp := s.now().Add(ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, fmt.Errorf("nonce journal closed: %w", ErrUnavailable)
	}
	if err := s.journalLocked(key, exp, ttl); err != nil {
		return false, fmt.Errorf("nonce journal: %v: %w", err, ErrUnavailable)
	}
	return true, nil
}

// journalLocked appends key, live until exp, to the file of exp's bucket. Called with s.mu held.
func (s *FileNonceStore) journalLocked(key string, exp time.Time, ttl time.Duration) error {
	if err := s.rotate(exp, ttl); err != nil {
		return err
	}
	s.buf = strconv.AppendInt(s.buf[:0], exp.UnixNano(), 10)
	s.buf = append(s.buf, ' ')
	s.buf = base64.RawURLEncoding.AppendEncode(s.buf, []byte(key))
	s.buf = append(s.buf, '\n')
	_, err := s.f.Write(s.buf)
	return err
}

// rotate makes s.f the journal file of exp's bucket, deleting the files whose bucket has wholly
// expired. Called with s.mu held.
func (s *FileNonceStore) rotate(exp time.Time, ttl time.Duration) error {
	if s.width == 0 {
		s.width = ttl
	}
	b := exp.UnixNano() / int64(s.width)
	if s.f != nil && b == s.bucket {
		return nil
	}
	if s.f != nil {
		if err := s.f.Close(); err != nil {
			return err
		}
		s.f = nil
	}
	f, err := os.OpenFile(s.bucketPath(b), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.f, s.bucket = f, b
	s.dropExpired()
	return nil
}

func (s *FileNonceStore) bucketPath(b int64) string {
	return filepath.Join(s.dir, nonceFilePrefix+strconv.FormatInt(b, 10)+nonceFileSuffix)
}

// dropExpired removes the journal files of buckets that end before the memory's horizon (the
// wall clock, but held back after a step forward): every nonce in them has expired and been
// forgotten. Errors are ignored: a file left behind is deleted at the next rotation or start.
func (s *FileNonceStore) dropExpired() {
	names, _ := filepath.Glob(filepath.Join(s.dir, nonceFilePrefix+"*"+nonceFileSuffix))
	now := s.mem.forgottenBefore()
	for _, name := range names {
		n := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(name), nonceFilePrefix), nonceFileSuffix)
		b, err := strconv.ParseInt(n, 10, 64)
		if err != nil || b == s.bucket {
			continue
		}
		if (b+1)*int64(s.width) <= now {
			_ = os.Remove(name)
		}
	}
}

// Len is the number of remembered nonces.
func (s *FileNonceStore) Len() int { return s.mem.Len() }

// Sweep frees the nonces whose bucket has expired and deletes the journal files whose nonces all
// have, so an idle gateway gives back memory and disk too.
func (s *FileNonceStore) Sweep() {
	s.mem.Sweep()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.width > 0 && !s.closed {
		s.dropExpired()
	}
}

// RunSweeper calls Sweep every interval until ctx is done.
func (s *FileNonceStore) RunSweeper(ctx context.Context, interval time.Duration) {
	every(ctx, interval, s.Sweep)
}

// Close closes the journal; later Use calls fail.
func (s *FileNonceStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
