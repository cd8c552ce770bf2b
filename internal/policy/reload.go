package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/watch"
)

// ErrNoSet means no policy set is loaded: every call is denied until one is.
var ErrNoSet = errors.New("no valid policy set")

// WatchDirs are the directories to watch for paths: a directory itself, a file's parent (editors
// and deploy tools replace a file by renaming a new one over it, which would end a watch on the
// old inode).
func WatchDirs(paths []string) ([]string, error) {
	seen := map[string]bool{}
	var dirs []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		d := filepath.Clean(p)
		if !st.IsDir() {
			d = filepath.Dir(d)
		}
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	return dirs, nil
}

// Relevant says whether an event on name concerns the policy files paths name: a named file, or
// a *.yaml/*.yml file (not a test file, not hidden) in a named directory.
func Relevant(paths []string, name string) bool {
	name = filepath.Clean(name)
	base := filepath.Base(name)
	for _, p := range paths {
		if filepath.Clean(p) == name {
			return true
		}
	}
	if strings.HasPrefix(base, ".") || IsTestFile(base) {
		return false
	}
	if !strings.HasSuffix(base, ".yaml") && !strings.HasSuffix(base, ".yml") {
		return false
	}
	for _, p := range paths {
		if filepath.Clean(p) == filepath.Dir(name) {
			return true
		}
	}
	return false
}

// ReadSnapshot reads the policy files paths name, for a watch.Watcher.
func ReadSnapshot(paths []string) (watch.Snapshot, error) {
	srcs, err := ReadSources(paths...)
	if err != nil {
		return nil, err
	}
	snap := make(watch.Snapshot, len(srcs))
	for i, s := range srcs {
		snap[i] = watch.File{Name: s.Name, Data: s.Data}
	}
	return snap, nil
}

// Sources turns a snapshot back into policy sources.
func Sources(snap watch.Snapshot) []Source {
	srcs := make([]Source, len(snap))
	for i, f := range snap {
		srcs[i] = Source{Name: f.Name, Data: f.Data}
	}
	return srcs
}
