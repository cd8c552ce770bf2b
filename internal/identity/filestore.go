package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// FileKeyStore keeps API key records in one JSON file (mode 0600) in the data directory: the
// embedded default, with no database. Writers (the server, `portcullis keys`) serialise on an
// advisory lock file and replace the file atomically (write, fsync, rename, fsync directory).
// Readers see a change at the next Lookup: each Lookup checks the file and reloads it when it is
// a different file than the one loaded, so a revocation by the CLI takes effect immediately. On
// Linux the check is a read of an inotify watch on the file, which finds nothing until the file
// is written, replaced or removed (not for a path through a symbolic link or on a network
// filesystem, which a watch cannot follow: those are stat'ed on every Lookup, as elsewhere).
type FileKeyStore struct {
	path string

	// fresh serialises the check: a Lookup that took a change event holds it until the keys it
	// reloads are in place, so no Lookup that starts after a change answers from before it.
	fresh sync.Mutex
	watch *keyWatch // nil: no watch (not Linux, or closed); stat on every Lookup

	mu     sync.RWMutex
	keys   map[string]KeyRecord
	loaded os.FileInfo // the file keys came from; nil when it did not exist
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
	s := &FileKeyStore{path: path, keys: map[string]KeyRecord{}, watch: newKeyWatch()}
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
	if s.watch != nil {
		s.watch.close()
		s.watch = nil
	}
	return nil
}

// refresh reloads the file if it changed since it was loaded.
func (s *FileKeyStore) refresh() error {
	s.fresh.Lock()
	defer s.fresh.Unlock()
	if s.watch != nil {
		if s.watch.quiet() {
			return nil
		}
		s.watch.arm(s.path)
	}
	// With a watch, only a change (or the first check) comes here: the file is read whatever its
	// stat says, so that a rewrite that keeps its size and time is not missed either.
	if err := s.reload(s.watch != nil); err != nil {
		if s.watch != nil {
			s.watch.armed = false // checked again on the next Lookup: a bad file stays an error
		}
		return err
	}
	return nil
}

// reload stats the file and reads it again when it is not the file loaded, or with force.
func (s *FileKeyStore) reload(force bool) error {
	fi, err := os.Stat(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		s.mu.Lock()
		s.keys, s.loaded = map[string]KeyRecord{}, nil
		s.mu.Unlock()
		return nil
	}
	if err != nil {
		return fmt.Errorf("api key file: %w", err)
	}
	s.mu.RLock()
	same := !force && s.loaded != nil && os.SameFile(s.loaded, fi) && s.loaded.ModTime().Equal(fi.ModTime()) && s.loaded.Size() == fi.Size()
	s.mu.RUnlock()
	if same {
		return nil
	}
	keys, err := readKeyFile(s.path)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.keys, s.loaded = keys, fi
	s.mu.Unlock()
	return nil
}

func readKeyFile(path string) (map[string]KeyRecord, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]KeyRecord{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read api key file: %w", err)
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("read api key file %s: larger than %d bytes", path, maxKeyFileSize)
	}
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
	if err := s.refresh(); err != nil {
		return KeyRecord{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec, ok := s.keys[id]
	if !ok {
		return KeyRecord{}, ErrKeyNotFound
	}
	return rec, nil
}

func (s *FileKeyStore) Insert(_ context.Context, rec KeyRecord, now time.Time) error {
	return s.update(func(keys map[string]KeyRecord) error { return insertRecord(keys, rec, now) })
}

func (s *FileKeyStore) List(_ context.Context, agentID string) ([]KeyRecord, error) {
	if err := s.refresh(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return listRecords(s.keys, agentID), nil
}

func (s *FileKeyStore) Revoke(_ context.Context, id string, at time.Time) error {
	return s.update(func(keys map[string]KeyRecord) error { return revokeRecord(keys, id, at) })
}
