package ledger

import (
	"sync"
	"testing"
)

// rawHash reuses keyed hashes across records: every use, concurrent or not, must give
// HashValue's text for its own parameters alone.
func TestRawHashIsHashValue(t *testing.T) {
	rd := newRedaction(nil, nil, []byte("0123456789abcdef0123456789abcdef"), 0)
	inputs := []string{``, `{}`, `{"a":1}`, `{"notes":"` + string(make([]byte, 3000)) + `"}`}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				for _, in := range inputs {
					if got, want := rd.rawHash([]byte(in)), HashValue(rd.hashKey, in); got != want {
						t.Errorf("rawHash(%.20q) = %s, want %s", in, got, want)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if got := (&redaction{}).rawHash([]byte(`{}`)); got != "" {
		t.Errorf("without a hash key: %q", got)
	}
}
