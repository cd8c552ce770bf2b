package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// keyFileLayouts are the three ways a Lookup checks the key file: a watch on a plain file, a stat
// on a path through a linked directory (which a watch cannot follow; the store's own writes keep
// the link), and a read of a file on what the store takes for a network filesystem.
var keyFileLayouts = []struct {
	name string
	path func(t *testing.T) string
}{
	{"watched", func(t *testing.T) string { return filepath.Join(t.TempDir(), KeyFileName) }},
	{"stat", func(t *testing.T) string {
		dir := t.TempDir()
		mustMkdir(t, filepath.Join(dir, "v1"))
		mustSymlink(t, "v1", filepath.Join(dir, "data"))
		return filepath.Join(dir, "data", KeyFileName)
	}},
	{"read", func(t *testing.T) string {
		asNetworkFS(t)
		return filepath.Join(t.TempDir(), KeyFileName)
	}},
}

// A Lookup that finds the file unchanged does not wait for another Lookup's check of it (a stat
// on a slow filesystem, a reload of a large file): concurrent verifications do not queue on the
// store. The other check is held here by its lock, as a Lookup in the middle of it holds it.
func TestKeyLookupDoesNotWaitOnAnotherCheck(t *testing.T) {
	for _, tc := range keyFileLayouts {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenFileKeyStore(tc.path(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, rec, err := CreateAPIKey(context.Background(), s, "agent-1", "", time.Now(), 0)
			if err != nil {
				t.Fatal(err)
			}
			s.fresh.Lock()
			done := make(chan error, 1)
			go func() {
				_, err := s.Lookup(context.Background(), rec.ID)
				done <- err
			}()
			select {
			case err := <-done:
				s.fresh.Unlock()
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(2 * time.Second):
				s.fresh.Unlock()
				<-done
				t.Fatal("a Lookup of an unchanged key file waited for another Lookup's check")
			}
		})
	}
}

// With lookups running on every goroutine, a revocation by another store (another process) is
// seen by every Lookup that starts after it returned — never the key as it was — and the key file
// made unreadable is an error for every Lookup after it, never the keys from before.
func TestKeyRevocationSeenUnderConcurrentLookups(t *testing.T) {
	for _, tc := range keyFileLayouts {
		t.Run(tc.name, func(t *testing.T) {
			bg := context.Background()
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			path := tc.path(t)
			r, err := OpenFileKeyStore(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			w, err := OpenFileKeyStore(path) // the revoking process
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			_, rec, err := CreateAPIKey(bg, w, "agent-1", "", t0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var revoked, corrupting, corrupt atomic.Bool
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						wasRevoked, wasCorrupt := revoked.Load(), corrupt.Load()
						got, err := r.Lookup(bg, rec.ID)
						corruptingBy := corrupting.Load() // the file replaced before this Lookup ended
						switch {
						case wasCorrupt && (err == nil || errors.Is(err, ErrKeyNotFound)):
							t.Errorf("a Lookup after the file was made unreadable: %+v, %v; want a read error", got, err)
							return
						case corruptingBy: // the Lookup overlapped the change: the file may be either
						case err != nil:
							t.Errorf("lookup: %v", err)
							return
						case wasRevoked && got.Active(t0.Add(time.Minute)):
							t.Error("a Lookup that started after the revocation returned the key active")
							return
						}
					}
				})
			}
			time.Sleep(20 * time.Millisecond)
			if err := w.Revoke(bg, rec.ID, t0); err != nil {
				t.Fatal(err)
			}
			revoked.Store(true)
			time.Sleep(20 * time.Millisecond)
			tmp := filepath.Join(filepath.Dir(path), "bad.json")
			if err := os.WriteFile(tmp, []byte(`{"version":1,"keys":[{"id":"x","bogus":1}]}`), 0o600); err != nil {
				t.Fatal(err)
			}
			corrupting.Store(true)
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
			corrupt.Store(true)
			time.Sleep(20 * time.Millisecond)
			close(stop)
			wg.Wait()
		})
	}
}

// asNetworkFS makes the store take every directory for a network mount (NFS, SMB, FUSE) until the
// test ends: no watch, and no trust in a stat.
func asNetworkFS(t testing.TB) {
	was := localFS
	localFS = func(string) bool { return false }
	t.Cleanup(func() { localFS = was })
}

// A key file on a network filesystem is read on every Lookup. A stat there is answered from the
// client's attribute cache, so a revocation written by another host looks like no change at all:
// same file, size and time. Here the file is rewritten in place to the same size and its time put
// back, which is what such a stat reports; the revoked key must not keep working.
func TestKeyFileOnNetworkFilesystemReadEveryLookup(t *testing.T) {
	asNetworkFS(t)
	bg := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), KeyFileName)
	rec := KeyRecord{ID: "k1", AgentID: "agent-1", Hash: "00", CreatedAt: t0}
	revoked := rec
	revoked.RevokedAt = t0.Add(time.Minute)
	const size = 512 // both versions padded to it: the stat cannot tell them apart
	write := func(r KeyRecord) {
		b, err := json.Marshal(keyFile{Version: 1, Keys: []KeyRecord{r}})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, bytes.Repeat([]byte(" "), size-len(b))...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(rec)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenFileKeyStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Lookup(bg, "k1"); err != nil || !got.Active(t0) {
		t.Fatalf("before revocation: %+v, %v", got, err)
	}
	write(revoked)
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if now, err := os.Stat(path); err != nil || !sameFile(fi, now, nil) {
		t.Fatalf("the rewrite should look unchanged to a stat: %v", err)
	}
	got, err := s.Lookup(bg, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Active(t0.Add(time.Hour)) {
		t.Fatal("a key revoked on a network filesystem still works: the lookup trusted a stat")
	}
}
