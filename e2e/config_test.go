package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dirListing names every file under dir, for "nothing was written" checks.
func dirListing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// TestInvalidConfigurationWritesNothing: serve and the stdio wrapper refuse a configuration that
// cannot run before they create the data directory, its keys, its databases or a ledger record;
// `config check` says the same, with every problem at its line, and creates nothing either.
func TestInvalidConfigurationWritesNothing(t *testing.T) {
	root := t.TempDir()
	pol := filepath.Join(root, "policies")
	if err := os.Mkdir(pol, 0o700); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile("../internal/app/defaults/report-generator-v1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(root, "gw.yaml")
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(root, "data")
	base := "data_dir: data\npolicies: [policies]\n"
	cases := []struct {
		name, cfg, policy string
		want              []string // on stderr
	}{
		{"misspelt key and a duration in words", base + "listne: 127.0.0.1:0\napprovals:\n  expiry: 5 seconds\n", string(good),
			[]string{cfgFile + ":3:1: listne: unknown key \"listne\"", `did you mean "listen"?`, cfgFile + ":5:11: approvals.expiry: want a duration", `did you mean "5s"?`}},
		{"invalid policy", base, "agent_id: x\nrules:\n  - name: r\n    tool: t\n    action: ALLOW\n    conditons: []\n",
			[]string{filepath.Join(pol, "p.yaml") + ":6:5: rules[0].conditons: unknown key"}},
		{"empty policy directory", base, "", []string{pol + ": no policy", "--allow-empty-policy"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			write(cfgFile, tc.cfg)
			os.Remove(filepath.Join(pol, "p.yaml"))
			if tc.policy != "" {
				write(filepath.Join(pol, "p.yaml"), tc.policy)
			}
			before := dirListing(t, root)
			for _, args := range [][]string{
				{"serve", "--config", cfgFile, "--listen", "127.0.0.1:0"},
				{"mcp", "--config", cfgFile, "--", "true"},
				{"config", "check", cfgFile},
			} {
				code, _, stderr := cli(t, []string{"PORTCULLIS_API_KEY=pcl_x"}, args...)
				if code != 1 {
					t.Errorf("%s: exit %d, want 1\n%s", args[0], code, stderr)
				}
				for _, w := range tc.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("%s: stderr lacks %q:\n%s", args[0], w, stderr)
					}
				}
				if strings.Contains(stderr, "config.Config") || strings.Contains(stderr, "time.Duration") {
					t.Errorf("%s: a Go type reached the user:\n%s", args[0], stderr)
				}
				if after := dirListing(t, root); !slices.Equal(before, after) {
					t.Errorf("%s wrote to disk: %q", args[0], after)
				}
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("data directory created: %v", err)
			}
		})
	}
	// An existing data directory whose configuration went bad stays as it was.
	dir, _, _ := initData(t)
	startServe(t, dir).stop(t)
	cfg := filepath.Join(dir, "portcullis.yaml")
	orig, _ := os.ReadFile(cfg)
	write(cfg, string(orig)+"limits:\n  max_body_bytes: lots\n")
	before := dirListing(t, dir)
	stamp := map[string]int64{}
	for _, p := range before {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			stamp[p] = st.Size()
		}
	}
	code, _, stderr := cli(t, nil, "serve", "--data", dir, "--listen", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "limits.max_body_bytes: want a size") || !strings.Contains(stderr, "8MiB") {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
	for p, size := range stamp {
		if st, err := os.Stat(p); err != nil || st.Size() != size {
			t.Errorf("%s changed by a refused start", p)
		}
	}
	if after := dirListing(t, dir); !slices.Equal(before, after) {
		t.Errorf("files appeared: %q", after)
	}
	// The checked file, once valid, is reported with what it loads.
	write(cfg, string(orig))
	code, out, stderr := cli(t, nil, "config", "check", "--data", dir)
	if code != 0 || !strings.Contains(out, "ok: "+cfg+": 1 policy in 1 file, 5 rules, 1 agent") {
		t.Errorf("config check: %d %s %s", code, out, stderr)
	}
}

// TestServeLogsWhatItLoaded: the start log says how many policies, rules, agents and upstreams
// were loaded and which gateways are mounted, so a gateway that loaded less than intended shows.
func TestServeLogsWhatItLoaded(t *testing.T) {
	dir, _, _ := initData(t)
	d := startServe(t, dir)
	d.stop(t)
	logs := d.stderr.String()
	for _, want := range []string{`"msg":"gateway loaded"`, `"policy_files":1`, `"policies":1`, `"rules":5`, `"agents":1`, `"mcp_upstreams":0`, `"gateways":["decision-api"]`} {
		if !strings.Contains(logs, want) {
			t.Errorf("start log lacks %s:\n%s", want, logs)
		}
	}
}
