package identity

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection keeps the engines free of servers, MCP, SQL and each other's layers,
// and the public sdk free of internal packages (architecture.md, "Dependency direction").
func TestDependencyDirection(t *testing.T) {
	forbidden := map[string][]string{
		"github.com/portcullis-ai/portcullis/internal/identity": {"database/sql", "net/http/httptest", "modelcontextprotocol", "redis", "internal/guard", "internal/ledger", "internal/policy", "internal/server"},
		"github.com/portcullis-ai/portcullis/internal/behavior": {"net/http", "database/sql", "modelcontextprotocol", "redis", "internal/guard", "internal/ledger", "internal/policy", "internal/identity"},
		"github.com/portcullis-ai/portcullis/sdk/httpsig":       {"portcullis/internal/"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range bad {
				if strings.Contains(dep, b) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
