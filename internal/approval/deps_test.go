package approval

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the engine an engine: no SQL drivers, no MCP, no HTTP server code of
// this module, no ledger or policy engine (they talk through interfaces declared here).
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{
		"database/sql",
		"modernc.org/",
		"github.com/jackc/",
		"github.com/modelcontextprotocol/",
		"github.com/portcullis-ai/portcullis/internal/store",
		"github.com/portcullis-ai/portcullis/internal/ledger",
		"github.com/portcullis-ai/portcullis/internal/policy",
		"github.com/portcullis-ai/portcullis/internal/guard",
		"github.com/portcullis-ai/portcullis/internal/server",
		"github.com/portcullis-ai/portcullis/internal/gateway",
		"github.com/portcullis-ai/portcullis/internal/cli",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned too little to be trusted: %v", deps)
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("approval depends on %s", d)
			}
		}
	}
}
