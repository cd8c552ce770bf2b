package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// FileKeyStore keeps API key records in one JSON file (mode 0600) in the data directory: the
// embedded default, with no database. Writers (the server, `portcullis keys`) serialise on an
// advisory lock file and replace the file atomically (write, fsync, rename, fsync directory).
// Readers see a change at the next Lookup: each Lookup checks the file and reloads it when it is
// a different file than the one loaded, so a revocation by the CLI takes effect immediately. On
// Linux the check is a poll of an inotify watch on the file, which finds nothing until the file
// is written, replaced or removed. A path through a symbolic link on a local filesystem, which a
// watch cannot follow, is stat'ed on every Lookup. A file on a network filesystem (NFS, SMB, FUSE),
// or anywhere the kind of filesystem cannot be told, is read on every Lookup: a stat there may be
// answered from the client's attribute cache for a minute, while an open makes an NFS client
// revalidate the file (close-to-open), so a revocation written by another host is seen at once.
// A check that finds nothing changed takes no lock: concurrent verifications never wait on one
// another; only a change is serialised, and reloaded once.
type FileKeyStore struct {
	path string

	// fresh serialises the slow check — taking a change event off the watch, arming it, a stat
	// that found another file — and the reload: a Lookup that saw a change holds it until the
	// keys it reloads are in place, so no Lookup that starts after a change answers from before it.
	fresh sync.Mutex
	// reloading is set under fresh before a change event is taken off the watch, and cleared once
	// the keys it announced are in place (or the watch disarmed on a bad file): a Lookup that finds
	// the watch quiet while it is set may have found it quiet only because that event was taken,
	// and waits on fresh.
	reloading atomic.Bool
	// watchMu keeps Close from releasing the watch's descriptor while lookups poll it. Lookups
	// only read-hold it, so they never wait on each other; Close holds fresh too.
	watchMu sync.RWMutex
	watch   *keyWatch // nil: no watch (not Linux, or closed); stat on every Lookup

	snap atomic.Pointer[keySnapshot] // the keys in place; nil until the first check
}

// keySnapshot is the key file as last loaded, replaced whole on a reload.
type keySnapshot struct {
	keys   map[string]KeyRecord
	loaded os.FileInfo // the file keys came from; nil when it did not exist
	// watched: loaded with the watch armed on the file, so the watch (not a stat) tells a change.
	watched bool
	// raw is the file's content when it is on a network filesystem (remote): each Lookup reads
	// the file and compares, parsing only what differs.
	raw    []byte
	remote bool
}

var _ KeyStore = (*FileKeyStore)(nil)

// KeyFileName is the file name under the data directory.
const KeyFileName = "apikeys.json"

type keyFile struct {
	Version int         `json:"version"`
	Keys    []KeyRecord `json:"keys"`
}

const maxKeyFileSize = 16 << 20

// OpenFileKeyStore opens (without creating) the key file at path.
func OpenFileKeyStore(path string) (*FileKeyStore, error) {
	s := &FileKeyStore{path: path, watch: newKeyWatch()}
	if err := s.refresh(); err != nil {
		s.Close()
		return nil, err
	}
	if w := s.watch; w != nil {
		// A store its owner never closes (a CLI command, a test) gives the descriptor back when
		// it is collected; Close does it at once.
		runtime.AddCleanup(s, func(w *keyWatch) { w.close() }, w)
	}
	return s, nil
}

// Close releases the file watch; the store keeps working, stat'ing the file on every Lookup.
func (s *FileKeyStore) Close() error {
	s.fresh.Lock()
	defer s.fresh.Unlock()
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.watch != nil {
		s.watch.close()
		s.watch = nil
	}
	return nil
}

// current returns the keys as of now: without a lock when the check finds the file unchanged
// since it was loaded, else after reloading it under fresh.
func (s *FileKeyStore) current() (*keySnapshot, error) {
	if snap := s.unchanged(); snap != nil {
		return snap, nil
	}
	if err := s.refresh(); err != nil {
		return nil, err
	}
	return s.snap.Load(), nil
}

// unchanged returns the keys in place when they are the file's as of now, or nil when that takes
// the slow check. Watched: no event is queued, no reload is under way, and the watch is still
// armed — in that order, so that an event another Lookup has just taken (it sets reloading first)
// or a watch it disarmed on a bad file (before clearing reloading) is never read as quiet.
// Unwatched on a local filesystem (a linked path, or no watch): a stat finds the file loaded. On a
// network filesystem: a read finds the content loaded.
func (s *FileKeyStore) unchanged() *keySnapshot {
	s.watchMu.RLock()
	defer s.watchMu.RUnlock()
	w := s.watch
	if w != nil && w.armed.Load() {
		if w.changed() || s.reloading.Load() || !w.armed.Load() {
			return nil
		}
		if snap := s.snap.Load(); snap != nil && snap.watched {
			return snap
		}
		return nil
	}
	snap := s.snap.Load()
	if snap == nil || snap.watched && w != nil {
		return nil // not loaded yet, or the watch was disarmed by a change or a bad file
	}
	if snap.remote {
		b, err := readKeyBytes(s.path)
		if err != nil || (b == nil) != (snap.raw == nil) || !bytes.Equal(b, snap.raw) {
			return nil
		}
		return snap
	}
	if fi, err := os.Stat(s.path); !sameFile(snap.loaded, fi, err) {
		return nil
	}
	return snap
}

// sameFile reports whether fi (or err) of a stat is the file loaded.
func sameFile(loaded, fi os.FileInfo, err error) bool {
	if loaded == nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	return err == nil && os.SameFile(loaded, fi) && loaded.ModTime().Equal(fi.ModTime()) && loaded.Size() == fi.Size()
}

// refresh reloads the file if it changed since it was loaded.
func (s *FileKeyStore) refresh() error {
	s.fresh.Lock()
	defer s.fresh.Unlock()
	w := s.watch
	if w == nil {
		return s.reload(false, false)
	}
	s.reloading.Store(true)
	defer s.reloading.Store(false)
	if w.quiet() {
		return nil
	}
	w.arm(s.path)
	// Watched, only a change (or the first check) comes here: the file is read whatever its stat
	// says, so that a rewrite that keeps its size and time is not missed either. A path the watch
	// cannot follow is compared by stat (or read, on a network filesystem), as without a watch.
	armed := w.armed.Load()
	if err := s.reload(armed, armed); err != nil {
		w.armed.Store(false) // checked again on the next Lookup: a bad file stays an error
		return err
	}
	return nil
}

// reload stats the file and reads it again when it is not the file loaded, or with force;
// watched records whether the watch was armed before the read.
func (s *FileKeyStore) reload(force, watched bool) error {
	// A path statfs cannot answer for (no file yet) is read too: opening a missing file costs
	// what a stat of it does.
	if !watched && !localFS(s.path) {
		return s.reread()
	}
	fi, err := os.Stat(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		s.snap.Store(&keySnapshot{keys: map[string]KeyRecord{}, watched: watched})
		return nil
	}
	if err != nil {
		return fmt.Errorf("api key file: %w", err)
	}
	old := s.snap.Load()
	if !force && old != nil && sameFile(old.loaded, fi, nil) {
		if old.watched != watched {
			s.snap.Store(&keySnapshot{keys: old.keys, loaded: old.loaded, watched: watched})
		}
		return nil
	}
	keys, err := readKeyFile(s.path)
	if err != nil {
		return err
	}
	s.snap.Store(&keySnapshot{keys: keys, loaded: fi, watched: watched})
	return nil
}

// reread reads a key file on a network filesystem and parses it when its content is not the
// content loaded; the snapshot keeps the content for the next Lookup to compare.
func (s *FileKeyStore) reread() error {
	b, err := readKeyBytes(s.path)
	if err != nil {
		return err
	}
	if old := s.snap.Load(); old != nil && old.remote && (b == nil) == (old.raw == nil) && bytes.Equal(b, old.raw) {
		return nil
	}
	keys := map[string]KeyRecord{}
	if b != nil {
		if keys, err = parseKeyFile(s.path, b); err != nil {
			return err
		}
	}
	s.snap.Store(&keySnapshot{keys: keys, raw: b, remote: true})
	return nil
}

// readKeyBytes returns the key file's content, or nil when it does not exist.
func readKeyBytes(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read api key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read api key file: %w", err)
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("read api key file %s: larger than %d bytes", path, maxKeyFileSize)
	}
	if b == nil {
		b = []byte{} // an empty file exists: it fails to parse, and is not "no file"
	}
	return b, nil
}

func readKeyFile(path string) (map[string]KeyRecord, error) {
	b, err := readKeyBytes(path)
	if err != nil || b == nil {
		return map[string]KeyRecord{}, err
	}
	return parseKeyFile(path, b)
}

func parseKeyFile(path string, b []byte) (map[string]KeyRecord, error) {
	var kf keyFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return nil, fmt.Errorf("read api key file %s: %w", path, err)
	}
	if kf.Version != 1 {
		return nil, fmt.Errorf("read api key file %s: unsupported version %d", path, kf.Version)
	}
	keys := make(map[string]KeyRecord, len(kf.Keys))
	for _, k := range kf.Keys {
		if _, dup := keys[k.ID]; dup {
			return nil, fmt.Errorf("read api key file %s: duplicate key id %s", path, k.ID)
		}
		keys[k.ID] = k
	}
	return keys, nil
}

func writeKeyFile(path string, keys map[string]KeyRecord) error {
	kf := keyFile{Version: 1, Keys: listRecords(keys, "")}
	if kf.Keys == nil {
		kf.Keys = []KeyRecord{}
	}
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return fmt.Errorf("write api key file: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".apikeys-*.tmp")
	if err != nil {
		return fmt.Errorf("write api key file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write api key file: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write api key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write api key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write api key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write api key file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: durability of the rename on filesystems that need it
		d.Close()
	}
	return nil
}

// update runs fn on the current records under the cross-process lock and writes the result.
func (s *FileKeyStore) update(fn func(keys map[string]KeyRecord) error) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("api key file: %w", err)
	}
	unlock, err := lockFile(s.path + ".lock")
	if err != nil {
		return fmt.Errorf("api key file: lock: %w", err)
	}
	defer unlock()
	keys, err := readKeyFile(s.path)
	if err != nil {
		return err
	}
	if err := fn(keys); err != nil {
		return err
	}
	if err := writeKeyFile(s.path, keys); err != nil {
		return err
	}
	return s.refresh()
}

func (s *FileKeyStore) Lookup(_ context.Context, id string) (KeyRecord, error) {
	snap, err := s.current()
	if err != nil {
		return KeyRecord{}, err
	}
	rec, ok := snap.keys[id]
	if !ok {
		return KeyRecord{}, ErrKeyNotFound
	}
	return rec, nil
}

func (s *FileKeyStore) Insert(_ context.Context, rec KeyRecord, now time.Time) error {
	return s.update(func(keys map[string]KeyRecord) error { return insertRecord(keys, rec, now) })
}

func (s *FileKeyStore) List(_ context.Context, agentID string) ([]KeyRecord, error) {
	snap, err := s.current()
	if err != nil {
		return nil, err
	}
	return listRecords(snap.keys, agentID), nil
}

func (s *FileKeyStore) Revoke(_ context.Context, id string, at time.Time) error {
	return s.update(func(keys map[string]KeyRecord) error { return revokeRecord(keys, id, at) })
}
