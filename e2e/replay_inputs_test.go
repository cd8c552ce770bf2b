package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/sdk"
)

// TestReplayDecidesRecordedInputs runs the gateway binary, decides calls for an asserted user
// with the SDK, stops it, and replays the ledger with the CLI under a candidate that reads the
// agent's role and the user's region (decided from the records) and one that reads a user
// attribute the ledger redacted (undecidable, never guessed).
func TestReplayDecidesRecordedInputs(t *testing.T) {
	dir, agentKey, _ := initData(t)
	cfgPath := filepath.Join(dir, app.ConfigFile)
	cfg, err := os.ReadFile(cfgPath)
	if err != nil || !bytes.Contains(cfg, []byte("      roles: [reporting]\n")) {
		t.Fatalf("the default configuration gives the demo agent no reporting role: %v", err)
	}
	cfg = bytes.Replace(cfg, []byte("      roles: [reporting]\n"), []byte("      roles: [reporting]\n      trust_asserted_user: true\n"), 1)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	d := startServe(t, dir)
	ctx := context.Background()
	agent := sdk.New(d.url, sdk.WithAPIKey(agentKey), sdk.WithAgentID(app.DemoAgent))
	user := &sdk.User{ID: "alice", Attributes: map[string][]string{"region": {"eu"}, "token": {"t-1"}}}
	for _, region := range []string{"eu", "us", "eu"} {
		dec, err := agent.Decide(ctx, sdk.DecideRequest{Tool: "fetch_customer_names", Params: map[string]any{"limit": 10, "region": region}, User: user})
		if err != nil || !dec.Allowed() {
			t.Fatalf("call in %s: %+v, %v", region, dec, err)
		}
	}
	d.stop(t)

	pol, err := os.ReadFile(filepath.Join(dir, "policies", app.DemoAgent+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	replay := func(cond string) (code int, rep map[string]any) {
		t.Helper()
		cand := t.TempDir()
		src := strings.Replace(string(pol), "      - parameter: limit\n        max_value: 1000", cond, 1)
		if src == string(pol) {
			t.Fatal("the default policy has no limit condition")
		}
		if err := os.WriteFile(filepath.Join(cand, "p.yaml"), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, stderr := cli(t, nil, "policy", "replay", "--data", dir, "--policy", cand, "--format", "json", "--fail-on", "undecidable")
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("replay: %d %v %s %s", code, err, out, stderr)
		}
		return code, rep
	}
	code, rep := replay("      - agent_role: reporting\n      - invoking_user_attribute: region\n        matches_parameter: region")
	if code != 0 || rep["decisions_replayed"] != 3.0 || rep["changed"] != 1.0 || rep["undecidable"] != 0.0 {
		t.Errorf("role and region: exit %d %v", code, rep)
	}
	code, rep = replay("      - invoking_user_attribute: token\n        matches_parameter: region")
	why, _ := rep["undecidable_reasons"].(map[string]any)
	if code != 1 || rep["undecidable"] != 3.0 || why["invoking_user_attribute token is redacted (rule read_customer_list)"] == nil {
		t.Errorf("redacted attribute: exit %d %v", code, rep)
	}
}
