package ledgertest

import (
	"context"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
)

// A ledger from Open is signed with the keys given and keyed with their hash key, verifies
// against their public keys, and is closed (its shutdown record written) when the test ends.
func TestOpen(t *testing.T) {
	keys := Keys(t)
	st := memory.New()
	t.Run("write", func(t *testing.T) {
		led := Open(t, st, keys, ledger.Options{CheckpointRecords: 1})
		if _, err := led.Append(context.Background(), &ledger.Record{Kind: ledger.KindDecision, DecisionID: "dec_1", Tool: "t", Decision: "ALLOW"}); err != nil {
			t.Fatal(err)
		}
	})
	rep, err := ledger.Verify(context.Background(), st, ledger.VerifyOptions{Keys: keys.Public})
	if err != nil || !rep.Intact {
		t.Fatalf("the ledger does not verify with its keys: %+v, %v", rep, err)
	}
	var last ledger.Record
	if err := st.Scan(context.Background(), rep.Records-1, func(e ledger.Entry) error {
		r, err := ledger.ParseRecord(e.Data)
		if err != nil {
			return err
		}
		last = *r
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if last.Kind != ledger.KindShutdown {
		t.Errorf("last record %s, want %s: the ledger was not closed when its test ended", last.Kind, ledger.KindShutdown)
	}
}
