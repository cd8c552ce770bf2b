// Package archtest keeps the dependency direction of docs/ARCHITECTURE.md true: engines know
// nothing of transports, servers or SQL drivers; only app and cli name concrete stores.
// It reads `go list -deps`, so a violating import fails the build's tests, not a review.
package archtest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/portcullis-ai/portcullis"

// engines may import each other's leaf types but nothing above them.
var engines = []string{"threat", "policy", "inspect", "identity", "behavior", "approval", "ledger", "export", "alert", "auditindex", "watch", "yamlx", "compliance"}

// forbiddenForEngines are import path prefixes an engine must never reach, directly or not.
var forbiddenForEngines = []string{
	module + "/internal/guard",
	module + "/internal/gateway",
	module + "/internal/server",
	module + "/internal/app",
	module + "/internal/cli",
	module + "/internal/store",
	module + "/internal/config",
	"github.com/modelcontextprotocol/",
	"modernc.org/sqlite",
	"github.com/jackc/pgx",
	"github.com/redis/go-redis",
	"database/sql",
}

type pkg struct {
	ImportPath string
	Deps       []string
	Imports    []string
}

func listDeps(t *testing.T, pattern string) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps=false", "-json=ImportPath,Deps,Imports", pattern).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		if strings.Contains(stderr, "matched no packages") || strings.Contains(stderr, "no Go files") {
			return nil
		}
		t.Fatalf("go list %s: %v\n%s", pattern, err, stderr)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestEnginesStayInward(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	for _, e := range engines {
		for _, p := range listDeps(t, module+"/internal/"+e+"/...") {
			if strings.Contains(p.ImportPath, "/internal/"+e+"/eval") || strings.HasSuffix(p.ImportPath, "/cmd") {
				continue // evaluation programs are tools beside the engine, not the engine
			}
			for _, d := range p.Deps {
				for _, f := range forbiddenForEngines {
					if reaches(d, f) {
						t.Errorf("%s depends on %s: engines must not reach %s (see docs/ARCHITECTURE.md)", p.ImportPath, d, f)
					}
				}
			}
		}
	}
}

// reaches reports whether package path d is forbidden package f or under it. A prefix ending
// in "/" names a tree; otherwise the match stops at a path boundary: internal/app forbids
// internal/app/... but not internal/approval.
func reaches(d, f string) bool {
	if strings.HasSuffix(f, "/") {
		return strings.HasPrefix(d, f)
	}
	return d == f || strings.HasPrefix(d, f+"/")
}

func TestReachesStopsAtPathBoundaries(t *testing.T) {
	for _, c := range []struct {
		d, f string
		want bool
	}{
		{module + "/internal/app", module + "/internal/app", true},
		{module + "/internal/app/defaults", module + "/internal/app", true},
		{module + "/internal/approval", module + "/internal/app", false},
		{"database/sql/driver", "database/sql", true},
		{"github.com/modelcontextprotocol/go-sdk/mcp", "github.com/modelcontextprotocol/", true},
	} {
		if got := reaches(c.d, c.f); got != c.want {
			t.Errorf("reaches(%s, %s) = %v", c.d, c.f, got)
		}
	}
}

// The public SDK is imported by other modules, which cannot import internal packages.
func TestSDKIsPublic(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	for _, p := range listDeps(t, module+"/sdk/...") {
		for _, d := range p.Deps {
			if strings.HasPrefix(d, module+"/internal/") {
				t.Errorf("%s depends on %s: the sdk must not import internal packages", p.ImportPath, d)
			}
		}
	}
}

// transportMay are the packages of the module a transport (internal/gateway/...) may import,
// besides its own subpackages: the guard's port, the agent type and the decision path's JSON.
var transportMay = map[string]bool{
	module + "/internal/guard":    true,
	module + "/internal/identity": true,
	module + "/internal/jsonx":    true,
}

// Transports reach the decision path through the guard's port only: no policy, inspection,
// approval, ledger or threat engine, no store, server or app. Imports are read directly, not
// through Deps: the guard itself imports the engines.
func TestTransportsUseOnlyGuard(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	checked := 0
	for _, p := range listDeps(t, module+"/internal/gateway/...") {
		checked++
		for _, imp := range transportViolations(p) {
			t.Errorf("%s imports %s: a transport may import only guard, identity, jsonx and its own subpackages (see docs/ARCHITECTURE.md)", p.ImportPath, imp)
		}
	}
	if checked == 0 {
		t.Fatal("no transport package listed")
	}
}

// transportViolations are the imports of transport package p that the rule forbids.
func transportViolations(p pkg) []string {
	var bad []string
	for _, imp := range p.Imports {
		if !strings.HasPrefix(imp, module+"/") || transportMay[imp] {
			continue
		}
		// Its own subpackages: gateway/mcp may import gateway/mcp/stdioconn.
		root := p.ImportPath
		if rest, ok := strings.CutPrefix(root, module+"/internal/gateway/"); ok {
			first, _, _ := strings.Cut(rest, "/")
			root = module + "/internal/gateway/" + first
		}
		if imp == root || strings.HasPrefix(imp, root+"/") {
			continue
		}
		bad = append(bad, imp)
	}
	return bad
}

// The rule itself: gateway/mcp importing policy (or another transport) is a violation.
func TestTransportRule(t *testing.T) {
	mcp := module + "/internal/gateway/mcp"
	cases := []struct {
		imports []string
		bad     int
	}{
		{[]string{module + "/internal/guard", module + "/internal/identity", module + "/internal/jsonx", mcp + "/stdioconn", "context"}, 0},
		{[]string{module + "/internal/policy"}, 1},
		{[]string{module + "/internal/ledger", module + "/internal/inspect", module + "/internal/approval", module + "/internal/threat"}, 4},
		{[]string{module + "/internal/gateway/llm"}, 1},
		{[]string{module + "/internal/guard/x"}, 1},
	}
	for _, tc := range cases {
		if got := transportViolations(pkg{ImportPath: mcp, Imports: tc.imports}); len(got) != tc.bad {
			t.Errorf("imports %v: violations %v, want %d", tc.imports, got, tc.bad)
		}
	}
}

// keepsOff fails t for every package under pattern that depends on one of forbidden (a package
// or a prefix of packages); it returns how many packages it checked.
func keepsOff(t *testing.T, pattern, who string, forbidden []string) int {
	t.Helper()
	pkgs := listDeps(t, pattern)
	for _, p := range pkgs {
		for _, d := range p.Deps {
			for _, f := range forbidden {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s depends on %s: %s must not reach %s (see docs/ARCHITECTURE.md)", p.ImportPath, d, who, f)
				}
			}
		}
	}
	return len(pkgs)
}

// The guard is below every transport: it never reaches one, the server, app or cli.
func TestGuardBelowTransports(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	keepsOff(t, module+"/internal/guard/...", "the guard", []string{module + "/internal/gateway", module + "/internal/server",
		module + "/internal/app", module + "/internal/cli", module + "/internal/store"})
}

// The console reads the approval engine and the ledger through the interfaces it declares: it
// never reaches a store, the guard, a transport, the HTTP API's server, app, cli or config.
func TestConsoleStaysOnItsAPIs(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	n := keepsOff(t, module+"/internal/console/...", "the console", []string{module + "/internal/store", module + "/internal/guard",
		module + "/internal/gateway", module + "/internal/server", module + "/internal/app", module + "/internal/cli",
		module + "/internal/config", "database/sql", "modernc.org/sqlite", "github.com/jackc/pgx", "github.com/redis/go-redis"})
	if n == 0 {
		t.Fatal("no console package listed")
	}
}
