package config

import (
	"os"
	"strings"
	"testing"
)

// The configuration examples in docs/configuration.md are real: each ```yaml block parses and
// validates.
func TestDocsExamplesParse(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := 0
	for _, part := range strings.Split(string(doc), "```yaml\n")[1:] {
		block, _, ok := strings.Cut(part, "```")
		if !ok {
			t.Fatal("unterminated yaml block")
		}
		blocks++
		c, err := Parse("docs/configuration.md", []byte(block))
		if err != nil {
			t.Errorf("example %d: %v", blocks, err)
			continue
		}
		if c.Identity.Agents[0].ID != "report-generator-v1" || c.Approvals.Approvers[0].ID != "alice@example.com" {
			t.Errorf("example %d decoded unexpectedly: %+v", blocks, c)
		}
	}
	if blocks == 0 {
		t.Fatal("no yaml examples found")
	}
}
