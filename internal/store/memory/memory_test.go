package memory_test

import (
	"testing"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
	"github.com/portcullis-ai/portcullis/internal/store/storetest"
)

func TestLedgerStoreContract(t *testing.T) {
	storetest.RunLedgerStore(t, func(*testing.T) ledger.Store { return memory.New() })
}

func TestSharedStoreContract(t *testing.T) {
	storetest.RunLedgerStore(t, func(*testing.T) ledger.Store { return memory.NewShared() })
	storetest.RunSharedStore(t, func(*testing.T) (ledger.SharedStore, ledger.SharedStore) {
		s := memory.NewShared()
		return s, s
	})
}

func TestReplicas(t *testing.T) {
	storetest.RunReplicas(t, func(*testing.T) (ledger.SharedStore, ledger.SharedStore) {
		s := memory.NewShared()
		return s, s
	})
}

func TestLedgerRecovery(t *testing.T) {
	storetest.RunLedgerRecovery(t, func(*testing.T) ledger.Store { return memory.New() })
}

func TestSharedLedgerRecovery(t *testing.T) {
	storetest.RunLedgerRecovery(t, func(*testing.T) ledger.Store { return memory.NewShared() })
}
