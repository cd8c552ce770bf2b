package ledger_test

import (
	"context"
	"sync/atomic"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// gateStore blocks commits while block is set, until release is closed.
type gateStore struct {
	ledger.Store
	block   atomic.Bool
	release chan struct{}
}

func (g *gateStore) Commit(ctx context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint) error {
	if g.block.Load() {
		<-g.release
	}
	return g.Store.Commit(ctx, recs, cp)
}
