// Package ledgertest builds ledgers for the tests of packages that write or read one: keys in a
// test's temporary directory, and a ledger opened with them on a store the test chooses. It owns
// no store and imports none (a ledger engine's package must not reach internal/store); it
// imports only the ledger and testing.
package ledgertest

import (
	"context"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// Origin is the checkpoint origin of the keys Keys generates.
const Origin = "portcullis.test/ledger"

// Keys generates a ledger's signing and hash keys in a temporary directory of tb's.
func Keys(tb testing.TB) *ledger.Keys {
	tb.Helper()
	keys, err := ledger.GenerateKeys(tb.TempDir(), Origin)
	if err != nil {
		tb.Fatal(err)
	}
	return keys
}

// Verifiers are the checkpoint verifiers of keys.
func Verifiers(tb testing.TB, keys *ledger.Keys) note.Verifiers {
	tb.Helper()
	vs, _, err := keys.Verifiers()
	if err != nil {
		tb.Fatal(err)
	}
	return vs
}

// Open opens a ledger on store, signed and keyed with keys (new ones from Keys when nil), with
// o's other options (o.Store, Signer, Verifiers and HashKey are set here), and closes it when the
// test ends if the test has not (Close is idempotent). Registered after the store was opened,
// that close runs before the store's own cleanup.
func Open(tb testing.TB, store ledger.Store, keys *ledger.Keys, o ledger.Options) *ledger.Ledger {
	tb.Helper()
	if keys == nil {
		keys = Keys(tb)
	}
	o.Store, o.Signer, o.Verifiers, o.HashKey = store, keys.Signer, Verifiers(tb, keys), keys.HashKey
	led, err := ledger.Open(context.Background(), o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = led.Close(context.Background()) })
	return led
}

// SizeCounter is a ledger.View that counts the reads of its size: a follower of the log (a
// tailer, the audit indexer) reads it once a step, so the count is its steps.
type SizeCounter struct {
	ledger.View
	Sizes atomic.Int64
}

// Size counts the read and returns the view's size.
func (v *SizeCounter) Size(ctx context.Context) (uint64, error) {
	v.Sizes.Add(1)
	return v.View.Size(ctx)
}
