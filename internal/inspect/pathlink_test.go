package inspect

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// linkTree builds a root with links: one to a directory outside it, one to a file outside it
// not created yet (writing through it creates the file there), one to a credential-like system
// file, one inside the root, and a loop.
func linkTree(t testing.TB) (root string) {
	t.Helper()
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "docs"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(root, "docs", "a.txt"), filepath.Join(outside, "secret.txt")} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"escape":   outside,
		"drop":     filepath.Join(outside, "new.txt"),
		"passwd":   "/etc/passwd",
		"inside":   "docs",
		"loop":     "loop",
		"relative": "../outside/secret.txt",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestPathThroughLink: a path inside the roots that leads outside them through a link is high
// when the gateway resolves links (it shares the tool server's file system); the lexical rules
// alone cannot see it.
func TestPathThroughLink(t *testing.T) {
	root := linkTree(t)
	e := New(Config{DetectorConfig: DetectorConfig{PathRoots: []string{root}, ResolveLinks: true}})
	for _, tc := range []struct {
		name, path string
		want       threat.Level
	}{
		{"directory link", filepath.Join(root, "escape", "secret.txt"), threat.High},
		{"relative through directory link", "escape/secret.txt", threat.High},
		{"dangling link to a new file", filepath.Join(root, "drop"), threat.High},
		{"file link to a system file", filepath.Join(root, "passwd"), threat.High},
		{"relative link target", filepath.Join(root, "relative"), threat.High},
		{"link loop", filepath.Join(root, "loop"), threat.High},
		{"link inside the root", filepath.Join(root, "inside", "a.txt"), threat.None},
		{"plain file", filepath.Join(root, "docs", "a.txt"), threat.None},
		{"file to be created", filepath.Join(root, "docs", "new", "b.txt"), threat.None},
		{"relative plain", "docs/a.txt", threat.None},
		// Lexically root/outside/secret.txt; the kernel climbs from the link's target instead.
		{"up-level after a link climbs from its target", filepath.Join(root, "escape") + "/../outside/secret.txt", threat.High},
		{"deep path not created yet", filepath.Join(root, "docs", strings.Repeat("d.d/", 700)+"x"), threat.None},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, _ := json.Marshal(map[string]string{"path": tc.path})
			res, err := e.Inspect(context.Background(), "write_file", Request, raw)
			if err != nil {
				t.Fatal(err)
			}
			if res.Level != tc.want {
				t.Fatalf("level %v, want %v: %+v", res.Level, tc.want, res.Findings)
			}
		})
	}
	// Lexical only (the default): the same link passes, as documented.
	lex := New(Config{DetectorConfig: DetectorConfig{PathRoots: []string{root}}})
	raw, _ := json.Marshal(map[string]string{"path": filepath.Join(root, "escape", "secret.txt")})
	if res, err := lex.Inspect(context.Background(), "read_file", Request, raw); err != nil || res.Level != threat.None {
		t.Fatalf("lexical: %v %+v", err, res)
	}
}

// TestPathThroughLinkedRoot: a root configured through a link of its own still bounds its paths.
func TestPathThroughLinkedRoot(t *testing.T) {
	root := linkTree(t)
	alias := filepath.Join(t.TempDir(), "alias")
	if err := os.Symlink(root, alias); err != nil {
		t.Fatal(err)
	}
	e := New(Config{DetectorConfig: DetectorConfig{PathRoots: []string{alias}, ResolveLinks: true}})
	for path, want := range map[string]threat.Level{
		filepath.Join(alias, "docs", "a.txt"):        threat.None,
		filepath.Join(alias, "escape", "secret.txt"): threat.High,
		filepath.Join(root, "docs", "a.txt"):         threat.Medium, // lexically outside the configured root
	} {
		raw, _ := json.Marshal(map[string]string{"path": path})
		res, err := e.Inspect(context.Background(), "read_file", Request, raw)
		if err != nil || res.Level != want {
			t.Errorf("%s: level %v, want %v (%v): %+v", path, res.Level, want, err, res.Findings)
		}
	}
}

// FuzzPathLinks resolves arbitrary path arguments against a tree of links: resolution must end
// (loops, dangling and relative links), never panic, and keep the level rule.
func FuzzPathLinks(f *testing.F) {
	for _, s := range []string{"escape/secret.txt", "drop", "loop", "loop/x", "relative", "inside/../escape",
		"../outside/secret.txt", "/", "", ".", "docs/a.txt/..", "escape/../../root/passwd", "\x00", "a/b/c/d/e"} {
		f.Add(s)
	}
	root := linkTree(f)
	e := New(Config{DetectorConfig: DetectorConfig{PathRoots: []string{root}, ResolveLinks: true}})
	f.Fuzz(func(t *testing.T, p string) {
		raw, err := json.Marshal(map[string]string{"path": p, "file": filepath.Join(root, p)})
		if err != nil {
			return
		}
		res, err := e.Inspect(context.Background(), "write_file", Request, raw)
		if err != nil {
			return // invalid UTF-8 and the like: the engine's own error
		}
		if LevelOf(res.Findings) != res.Level {
			t.Fatalf("level %v disagrees with findings", res.Level)
		}
	})
}
