package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionHashesFileBytes: the set's version is the documented digest of its files' bytes —
// reproducible with sha256sum — the same wherever the files live and however often they are
// loaded, and different as soon as any byte, or the set of files, changes.
func TestVersionHashesFileBytes(t *testing.T) {
	copyTo := func(dir string, names ...string) {
		for _, n := range names {
			data, err := os.ReadFile(filepath.Join("testdata/seed", n))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, n), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	seed := []string{"01_deny_by_default.yaml", "02_context_aware.yaml", "03_abac.yaml", "04_prose.yaml"}
	load := func(paths ...string) string {
		t.Helper()
		set, err := Load(paths...)
		if err != nil {
			t.Fatal(err)
		}
		return set.Version()
	}
	a, b := t.TempDir(), filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Mkdir(b, 0o700); err != nil {
		t.Fatal(err)
	}
	copyTo(a, seed...)
	copyTo(b, seed...)
	// `cd testdata/seed && sha256sum 0*.yaml | LC_ALL=C sort -k2 | sha256sum | cut -c1-16`
	const want = "sha256:e632076fdc1ede84"
	if v := load(a); v != want {
		t.Fatalf("version %s, want %s (the documented digest of the files)", v, want)
	}
	if v := load(b); v != want {
		t.Errorf("the same files in another directory: %s, want %s", v, want)
	}
	// Files named one by one, in another order: the same set.
	if v := load(filepath.Join(a, seed[3]), filepath.Join(a, seed[0]), filepath.Join(a, seed[2]), filepath.Join(a, seed[1])); v != want {
		t.Errorf("files named in another order: %s, want %s", v, want)
	}

	// Any change of bytes is a new version: a blank line, a comment, a trailing newline.
	p := filepath.Join(a, seed[0])
	orig, _ := os.ReadFile(p)
	seen := map[string]string{want: "original"}
	for name, data := range map[string]string{
		"blank line":       strings.Replace(string(orig), "rules:\n", "\nrules:\n", 1),
		"comment":          string(orig) + "# reviewed\n",
		"trailing newline": string(orig) + "\n",
	} {
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		v := load(a)
		if prev, dup := seen[v]; dup {
			t.Errorf("%s: version %s is the same as for %s", name, v, prev)
		}
		seen[v] = name
	}
	if err := os.WriteFile(p, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if v := load(a); v != want {
		t.Errorf("the original bytes restored: %s, want %s", v, want)
	}
	// A file removed or renamed is a new version.
	if v := load(filepath.Join(a, seed[0]), filepath.Join(a, seed[1]), filepath.Join(a, seed[2])); v == want {
		t.Error("a file fewer kept the version")
	}
	if err := os.Rename(filepath.Join(a, seed[3]), filepath.Join(a, "05_prose.yaml")); err != nil {
		t.Fatal(err)
	}
	if v := load(a); v == want {
		t.Error("a renamed file kept the version")
	}
}
