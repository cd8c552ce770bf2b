package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyDeploy(t *testing.T) {
	allow := func(agent, tool string) string {
		return "agent_id: " + agent + "\nrules:\n  - {name: r, tool: " + tool + ", action: ALLOW}\n"
	}
	tests := []struct {
		name     string
		existing map[string]string // files already in the target directory
		deploy   map[string]string // files to deploy (written to a source directory)
		extra    []string          // extra arguments
		code     int
		stderr   string
		want     map[string]string // the target directory afterwards (nil: unchanged)
	}{
		{name: "new file", deploy: map[string]string{"a.yaml": allow("a", "t")}, code: exitOK,
			want: map[string]string{"a.yaml": allow("a", "t")}},
		{name: "replaces a file", existing: map[string]string{"a.yaml": allow("a", "old")}, deploy: map[string]string{"a.yaml": allow("a", "new")}, code: exitOK,
			want: map[string]string{"a.yaml": allow("a", "new")}},
		{name: "invalid file leaves the target alone", existing: map[string]string{"a.yaml": allow("a", "old")},
			deploy: map[string]string{"a.yaml": "agent_id: a\nrules:\n  - {name: r, tool: t, action: ALOW}\n"}, code: exitFail, stderr: "a.yaml:3:"},
		{name: "conflict with the rest of the directory", existing: map[string]string{"a.yaml": allow("a", "t")},
			deploy: map[string]string{"b.yaml": allow("a", "u")}, code: exitFail, stderr: "second policy for agent"},
		{name: "a test file is refused", deploy: map[string]string{"a_test.yaml": "cases: []\n"}, code: exitUsage, stderr: "would not be loaded"},
		{name: "no target", deploy: map[string]string{"a.yaml": allow("a", "t")}, extra: []string{"--to"}, code: exitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			for n, c := range tc.existing {
				if err := os.WriteFile(filepath.Join(dst, n), []byte(c), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"policy", "deploy"}
			for n, c := range tc.deploy {
				p := filepath.Join(src, n)
				if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, p)
			}
			if tc.extra != nil {
				args = append(args, tc.extra...)
			} else {
				args = append(args, "--to", dst)
			}
			code, out, errOut := run(t, "", args...)
			if code != tc.code || !strings.Contains(errOut, tc.stderr) {
				t.Fatalf("code %d stdout %q stderr %q, want %d and %q", code, out, errOut, tc.code, tc.stderr)
			}
			want := tc.want
			if want == nil {
				want = tc.existing
			}
			ents, err := os.ReadDir(dst)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != len(want) {
				t.Errorf("target holds %d entries (temporary files left?), want %d", len(ents), len(want))
			}
			for n, c := range want {
				got, err := os.ReadFile(filepath.Join(dst, n))
				if err != nil || string(got) != c {
					t.Errorf("%s = %q (%v), want %q", n, got, err, c)
				}
			}
			if tc.existing != nil && tc.code == exitOK {
				if st, err := os.Stat(filepath.Join(dst, "a.yaml")); err != nil || st.Mode().Perm() != 0o640 {
					t.Errorf("the replaced file's mode was not kept: %v %v", st.Mode(), err)
				}
			}
		})
	}
}
