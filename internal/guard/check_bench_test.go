package guard

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/behavior"
	"github.com/portcullis-ai/portcullis/internal/identity"
)

// benchParams is about 1 KiB of arguments: nested objects, an array, numbers and plain text,
// the shape of a typical tool call.
func benchParams(extra string) string {
	var b strings.Builder
	b.WriteString(`{"title":"quarterly notes","body":"`)
	b.WriteString(strings.Repeat("revenue grew in every region this quarter; ", 14))
	b.WriteString(`","tags":["sales","q3","internal"],"owner":{"id":9007199254740993,"name":"Ada","team":"finance"},`)
	for i := range 8 {
		fmt.Fprintf(&b, `"field_%d":{"value":%d.5,"note":"entry number %d"},`, i, i, i)
	}
	b.WriteString(extra)
	b.WriteString(`"done":true}`)
	return b.String()
}

// BenchmarkCheck is one whole Check (ledger on the in-memory store) of an allowed call with
// about 1 KiB of parameters: plain, and with a member whose name is sensitive (the ledger
// redacts it) — and plain again with a candidate set in shadow (decided a second time), and
// with the inputs a decision records (an agent with a role, an asserted user with attributes,
// one named like a credential, behaviour tracking). B/record is the last record's size.
func BenchmarkCheck(b *testing.B) {
	shadow := func(o *Options) { o.Shadow = o.Policies }
	tracked := func(o *Options) {
		o.Behavior = Tracked(behavior.NewTracker(behavior.NewMemoryStore(behavior.MemoryOptions{}), behavior.DefaultConfig()))
	}
	for _, c := range []struct {
		name, extra string
		guard       func(*Options)
	}{{"plain", "", nil}, {"sensitive", `"password":"hunter2",`, nil}, {"shadow", "", shadow}, {"inputs", "", tracked}} {
		b.Run(c.name, func(b *testing.B) {
			h := newHarnessWith(b, harnessOptions{guard: c.guard})
			ctx := context.Background()
			req := h.call("save_note", benchParams(c.extra))
			req.Agent = h.agent(b)
			if c.name == "inputs" {
				a := *req.Agent
				a.Roles, a.RolePermissions = []string{"reporting"}, map[string][]string{"reporting": {"sales_read"}}
				req.Agent = &a
				req.AssertedUser = &identity.AssertedUser{ID: "alice", Permissions: []string{"crm_read"},
					Attributes: map[string][]string{"region": {"eu"}, "session": {"s-1"}}}
			}
			b.Cleanup(func() {
				if recs, _ := h.store.Raw(); len(*recs) > 0 {
					b.ReportMetric(float64(len((*recs)[len(*recs)-1])), "B/record")
				}
			})
			b.SetBytes(int64(len(req.Params)))
			b.ReportAllocs()
			for b.Loop() {
				if d := h.g.Check(ctx, req); !d.Allowed() {
					b.Fatal(d.Action, d.Code, d.Err)
				}
			}
		})
	}
}
