package approval_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/store/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.RunApprovalStore(t, func(t *testing.T) approval.Store { return approval.NewMemory() })
}

func FuzzDecodeRequest(f *testing.F) {
	r := approval.Request{
		ID: "apr_1", Agent: "a", Tool: "t", ParamsDigest: "sha256:" + strings.Repeat("0", 64),
		Params: json.RawMessage(`{"x":"<&>"}`), Required: 1, GrantTTL: time.Minute, State: approval.Pending,
		CreatedAt: time.Unix(0, 0), ExpiresAt: time.Unix(60, 0),
	}
	good, err := approval.EncodeRequest(&r)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"id":"apr_1","state":"approved"}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := approval.DecodeRequest(b)
		if err != nil {
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("decoded an invalid request: %v", err)
		}
		again, err := approval.EncodeRequest(&got)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := approval.DecodeRequest(again)
		if err != nil {
			t.Fatalf("decode of re-encoded: %v", err)
		}
		if diff := cmp.Diff(got, back, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
			t.Fatalf("round trip changed the request (-first +second):\n%s", diff)
		}
	})
}
