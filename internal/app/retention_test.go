package app

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// With ledger.retention set, the running gateway archives and prunes by itself; what it leaves
// verifies, archives and live together, while it keeps deciding.
func TestGatewayRetentionArchives(t *testing.T) {
	g := newGatewayWith(t, func(c *config.Config) {
		c.Ledger.CheckpointRecords = 10
		c.Ledger.Retention = config.RetentionConfig{MaxRecords: 5, Interval: 200 * time.Millisecond}
	})
	for range 30 {
		if code, a := g.post("/v1/decide", g.key, []byte(`{"tool":"fetch_customer_names","params":{"limit":50}}`)); code != 200 || a.Decision != "ALLOW" {
			t.Fatalf("decide: %d %+v", code, a)
		}
	}
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, err := ledger.LoadBase(ctx, g.app.ledgerStore)
		if err != nil {
			t.Fatal(err)
		}
		if b != nil {
			if n, _ := b.Size(); n >= 21 {
				break
			}
		}
	}
	as, err := ledger.ListArchives(filepath.Join(g.dir, "archive"))
	if err != nil || len(as) == 0 {
		t.Fatalf("no archive written: %v (logs: %s)", err, g.logBuf())
	}
	keys, err := ledger.LoadKeys(g.dir)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := g.post("/v1/decide", g.key, []byte(`{"tool":"fetch_customer_names","params":{"limit":50}}`)); code != 200 {
		t.Fatalf("decide after archiving: %d", code)
	}
	rep, err := ledger.VerifyArchived(ctx, as, g.app.ledgerStore, ledger.VerifyOptions{Keys: keys.Public, CheckpointRecords: 10})
	if err != nil || !rep.Intact {
		t.Fatalf("archives + live: %+v %v", rep, err)
	}
}
