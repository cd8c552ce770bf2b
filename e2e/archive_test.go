package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/sdk"
)

// The binary archives a real gateway's ledger: `audit archive` refuses while the gateway runs
// (it is the gateway's own file), archives and prunes once it stopped; the gateway starts again
// on the pruned ledger; `audit verify` checks archives + live, `audit prove` an archived record.
func TestAuditArchiveRealGateway(t *testing.T) {
	dir, agentKey, _ := initData(t)
	ctx := context.Background()
	d := startServe(t, dir)
	agent := sdk.New(d.url, sdk.WithAPIKey(agentKey), sdk.WithAgentID(app.DemoAgent))
	decide := func(n int) {
		for range n {
			if dec, err := agent.Decide(ctx, sdk.DecideRequest{Tool: "fetch_customer_names", Params: map[string]any{"limit": 10}}); err != nil || !dec.Allowed() {
				t.Fatalf("decide: %+v %v", dec, err)
			}
		}
	}
	decide(40)
	if code, _, stderr := cli(t, nil, "audit", "archive", "--data", dir, "--max-records", "5"); code != 2 || !strings.Contains(stderr, "in use") {
		t.Fatalf("audit archive beside the running gateway: %d %s", code, stderr)
	}
	d.stop(t)

	code, out, stderr := cli(t, nil, "audit", "archive", "--data", dir, "--max-records", "5")
	if code != 0 {
		t.Fatalf("audit archive: %d %s %s", code, out, stderr)
	}
	var res struct {
		Archived []struct {
			Archive  string
			From, To uint64
			Verified bool
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Archived) == 0 || !res.Archived[0].Verified {
		t.Fatalf("archive result: %s %v", out, err)
	}
	cut := res.Archived[len(res.Archived)-1].To
	if names, _ := filepath.Glob(filepath.Join(dir, "archive", "ledger-*.jsonl.gz")); len(names) != len(res.Archived) {
		t.Fatalf("archive files %v for %d archived segments", names, len(res.Archived))
	}

	d = startServe(t, dir)
	agent = sdk.New(d.url, sdk.WithAPIKey(agentKey), sdk.WithAgentID(app.DemoAgent))
	decide(5)
	d.stop(t)
	code, out, stderr = cli(t, nil, "audit", "verify", "--data", dir)
	if code != 0 || !strings.Contains(out, `"archives"`) {
		t.Fatalf("audit verify, archives + live: %d %s %s", code, out, stderr)
	}
	if code, out, stderr := cli(t, nil, "audit", "verify", "--data", dir, "--archive", "none"); code != 0 || !strings.Contains(out, `"archived_records"`) {
		t.Fatalf("audit verify, the live log alone: %d %s %s", code, out, stderr)
	}
	if code, out, stderr := cli(t, nil, "audit", "prove", "--data", dir, "--seq", "0"); code != 0 || !strings.Contains(out, `"leaf_hash"`) {
		t.Fatalf("audit prove of an archived record (the log now begins at %d): %d %s %s", cut, code, out, stderr)
	}
}
