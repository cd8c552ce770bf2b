package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
	"github.com/portcullis-ai/portcullis/internal/store/storetest"
)

func TestLedgerStoreContract(t *testing.T) {
	storetest.RunLedgerStore(t, func(t *testing.T) ledger.Store {
		s, err := sqlite.OpenLedger(filepath.Join(t.TempDir(), "ledger.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestLedgerRecovery(t *testing.T) {
	storetest.RunLedgerRecovery(t, func(t *testing.T) ledger.Store {
		s, err := sqlite.OpenLedger(filepath.Join(t.TempDir(), "ledger.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// Two handles on one ledger file (a gateway's retention and `audit archive`): one archiver at a time.
func TestArchiveLock(t *testing.T) {
	storetest.RunArchiveLock(t, func(t *testing.T) (ledger.Store, ledger.Store) {
		path := filepath.Join(t.TempDir(), "ledger.db")
		var out [2]ledger.Store
		for i := range out {
			s, err := sqlite.OpenLedger(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			out[i] = s
		}
		return out[0], out[1]
	})
}
