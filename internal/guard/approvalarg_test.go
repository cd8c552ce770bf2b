package guard

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/approval"
)

// TestApprovalArgDigest: a retry's parameters, the approval argument taken out, digest to what
// the same parameters digest to without it (the held call's digest, which the grant binds),
// whatever their layout; deeper than the approval digest allows, the retry still reads and the
// digest is refused as before.
func TestApprovalArgDigest(t *testing.T) {
	for _, tc := range []struct{ retry, held string }{
		{`{"a":1.50,"_portcullis_approval_id":"apr_x","b":[true,null,"é"]}`, `{ "b" : [true, null, "\u00e9"], "a" : 1.50 }`},
		{`{"_portcullis_approval_id":"apr_x"}`, `{}`},
		{`{"z":{"y":{"x":"\ud83d\ude00"}},"_portcullis_approval_id":"apr_x","a":9007199254740993}`, `{"a":9007199254740993,"z":{"y":{"x":"😀"}}}`},
	} {
		p := new(callParams)
		if err := p.parse(json.RawMessage(tc.retry)); err != nil {
			t.Fatal(err)
		}
		req, err := takeApprovalArg(Request{Params: json.RawMessage(tc.retry), ApprovalArg: "_portcullis_approval_id"}, p)
		if err != nil || req.ApprovalID != "apr_x" {
			t.Fatalf("%s: %+v %v", tc.retry, req, err)
		}
		got, err := p.paramsDigest()
		if err != nil {
			t.Fatal(err)
		}
		want, err := approval.Digest(json.RawMessage(tc.held))
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := approval.Digest(req.Params); got != want || again != want {
			t.Errorf("%s: digest %s (of the parameters out: %s), want %s", tc.retry, got, again, want)
		}
	}

	deep := strings.Repeat(`{"a":`, approval.MaxCanonicalDepth+1) + `1` + strings.Repeat(`}`, approval.MaxCanonicalDepth+1)
	retry := `{"_portcullis_approval_id":"apr_x","d":` + deep + `}`
	p := new(callParams)
	if err := p.parse(json.RawMessage(retry)); err != nil {
		t.Fatal(err)
	}
	if _, err := takeApprovalArg(Request{Params: json.RawMessage(retry), ApprovalArg: "_portcullis_approval_id"}, p); err != nil {
		t.Fatalf("deep parameters with an approval argument: %v", err)
	}
	if _, err := p.paramsDigest(); err == nil {
		t.Error("parameters deeper than the approval digest allows were digested")
	}
}

// BenchmarkApprovalRetry is what a retry's parameters cost before the policy: the approval
// argument taken out of about 1 KiB of parameters, and the digest the grant is matched by.
func BenchmarkApprovalRetry(b *testing.B) {
	raw := json.RawMessage(benchParams(`"_portcullis_approval_id":"apr_abcdefghijklmnopqrstuvwxyz",`))
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		p := new(callParams)
		if err := p.parse(raw); err != nil {
			b.Fatal(err)
		}
		if _, err := takeApprovalArg(Request{Params: raw, ApprovalArg: "_portcullis_approval_id"}, p); err != nil {
			b.Fatal(err)
		}
		if _, err := p.paramsDigest(); err != nil {
			b.Fatal(err)
		}
	}
}
