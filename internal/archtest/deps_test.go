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
var engines = []string{"threat", "policy", "inspect", "identity", "behavior", "approval", "ledger", "watch"}

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
}

func listDeps(t *testing.T, pattern string) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps=false", "-json=ImportPath,Deps", pattern).Output()
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
					if strings.HasPrefix(d, f) {
						t.Errorf("%s depends on %s: engines must not reach %s (see docs/ARCHITECTURE.md)", p.ImportPath, d, f)
					}
				}
			}
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
