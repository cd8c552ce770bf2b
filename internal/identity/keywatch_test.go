package identity

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// The key file is watched, not stat'ed, on every Lookup: a change is seen by the next Lookup
// whether the file is replaced (another store's revocation), rewritten in place with its size and
// modification time kept (which a stat cannot tell from no change), or removed; a file that
// cannot be read stays an error on every Lookup, never the keys before it; and a closed store
// goes on working from stat.
func TestKeyFileChangesSeenAtNextLookup(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the watch is inotify's; elsewhere every Lookup stats the file")
	}
	bg := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), KeyFileName)
	s1, err := OpenFileKeyStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	key, rec, err := CreateAPIKey(bg, s1, "agent-1", "first", t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkAPIKey(bg, s1, key, t0); err != nil {
		t.Fatalf("fresh key: %v", err)
	}
	if s1.watch == nil || !s1.watch.armed.Load() {
		t.Fatal("the key file is not watched")
	}

	// Rewritten in place, same size and modification time: the key's id changes by one digit.
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	other := []byte(string(before))
	i := indexOf(other, rec.ID)
	other[i] ^= 1
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(other, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Lookup(bg, rec.ID); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("after an in-place rewrite that keeps size and time: %v, want the key gone", err)
	}
	if err := os.WriteFile(path, before, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := checkAPIKey(bg, s1, key, t0); err != nil {
		t.Fatalf("key restored: %v", err)
	}

	// Replaced by another store (write, rename): revoked at the next Lookup.
	s2, err := OpenFileKeyStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Revoke(bg, rec.ID, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := checkAPIKey(bg, s1, key, t0.Add(time.Minute)); !errors.Is(err, ErrRevoked) {
		t.Errorf("after a revocation elsewhere: %v", err)
	}

	// Unreadable: an error on this Lookup and the next ones.
	if err := os.WriteFile(path+".new", []byte(`{"version":1,"keys":[{"id":"x","bogus":1}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s1.Lookup(bg, rec.ID); err == nil || errors.Is(err, ErrKeyNotFound) {
			t.Errorf("lookup %d of a corrupt file: %v, want a read error", i, err)
		}
	}

	// Removed: no keys. Closed: changes still seen, by stat.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Lookup(bg, rec.ID); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("after removal: %v", err)
	}
	s1.Close()
	if err := os.WriteFile(path, before, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := checkAPIKey(bg, s1, key, t0); err != nil {
		t.Errorf("closed store, file back: %v", err)
	}
}

func indexOf(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	panic("not found: " + s)
}

// TestKeyFileThroughSymlinkRevoked: inotify watches the file a path resolves to, not the path.
// When the key file is reached through a symbolic link (a secret mount, a ConfigMap's ..data
// link, a data directory that is itself a link), a revocation that replaces the path — the
// store's own write and rename replaces the link, an `ln -sfn` swap repoints it — leaves the
// watched file untouched, and a watch would never see it. Such a path is stat'ed on every
// Lookup instead, as on other systems.
func TestKeyFileThroughSymlinkRevoked(t *testing.T) {
	bg := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		// layout makes the key file's path (a link somewhere on it) and returns it with the
		// file the link resolves to.
		layout func(t *testing.T, dir string) (path, target string)
		// replace puts the revoked file (written at src) in place the way this layout is updated.
		replace func(t *testing.T, path, target, src string)
	}{
		{"link to the file, replaced by rename",
			func(t *testing.T, dir string) (string, string) {
				target := filepath.Join(dir, "mounted.json")
				path := filepath.Join(dir, KeyFileName)
				mustSymlink(t, target, path)
				return path, target
			},
			func(t *testing.T, path, _, src string) { mustRename(t, src, path) }},
		{"link to a directory, swapped",
			func(t *testing.T, dir string) (string, string) {
				mustMkdir(t, filepath.Join(dir, "v1"))
				mustSymlink(t, "v1", filepath.Join(dir, "data"))
				return filepath.Join(dir, "data", KeyFileName), filepath.Join(dir, "v1", KeyFileName)
			},
			func(t *testing.T, path, target, src string) {
				dir := filepath.Dir(filepath.Dir(target))
				mustMkdir(t, filepath.Join(dir, "v2"))
				mustRename(t, src, filepath.Join(dir, "v2", KeyFileName))
				mustSymlink(t, "v2", filepath.Join(dir, "data.new"))
				mustRename(t, filepath.Join(dir, "data.new"), filepath.Join(dir, "data"))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path, target := tc.layout(t, dir)
			// The revoked version is prepared through a store of its own on a plain file.
			plain := filepath.Join(t.TempDir(), KeyFileName)
			w, err := OpenFileKeyStore(plain)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			key, rec, err := CreateAPIKey(bg, w, "agent-1", "first", t0, 0)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(plain)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, b, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := OpenFileKeyStore(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := checkAPIKey(bg, s, key, t0); err != nil {
				t.Fatalf("fresh key: %v", err)
			}
			if err := w.Revoke(bg, rec.ID, t0); err != nil {
				t.Fatal(err)
			}
			tc.replace(t, path, target, plain)
			if _, err := checkAPIKey(bg, s, key, t0.Add(time.Minute)); !errors.Is(err, ErrRevoked) {
				t.Errorf("after the revocation replaced the path: %v, want revoked", err)
			}
		})
	}
}

func mustSymlink(t *testing.T, old, new string) {
	t.Helper()
	if err := os.Symlink(old, new); err != nil {
		t.Fatal(err)
	}
}

func mustRename(t *testing.T, old, new string) {
	t.Helper()
	if err := os.Rename(old, new); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}
