package approval

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// benchParams is a ~1 KiB tool call: nested objects, arrays, escapes and numbers.
var benchParams = func() []byte {
	var b strings.Builder
	b.WriteString(`{"query": {"table": "customers", "filter": {"region": "emea", "since": "2026-01-01"}, "limit": 10000},`)
	b.WriteString(` "columns": [`)
	for i := range 20 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `"col_%d"`, i)
	}
	b.WriteString(`], "note": "quarterly \"bulk\" export \u00e9\n", "amounts": [1.5, 2e3, -7, 12345678901234567890],`)
	b.WriteString(` "destination": {"bucket": "s3://exports", "path": "/reports/q1.csv", "encrypt": true, "owner": null}}`)
	return []byte(b.String())
}()

func BenchmarkCanonicalize(b *testing.B) {
	b.SetBytes(int64(len(benchParams)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonicalize(benchParams); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDigest(b *testing.B) {
	b.SetBytes(int64(len(benchParams)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Digest(benchParams); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLifecycleMemory is one whole approval on the in-memory store: request, approve,
// redeem, with a recorder that accepts everything.
func BenchmarkLifecycleMemory(b *testing.B) {
	benchLifecycle(b, NewMemory())
}

func benchLifecycle(b *testing.B, st Store) {
	ctx := context.Background()
	e, err := New(st, RecorderFunc(func(context.Context, Event) error { return nil }))
	if err != nil {
		b.Fatal(err)
	}
	digest, _ := Digest(benchParams)
	in := Input{
		Agent: "reporting-agent", User: "dave", UserVerified: true, Tool: "export_customer_data",
		ParamsDigest: digest, RedactedParams: json.RawMessage(benchParams), Rule: "bulk_export", PolicyVersion: "v1",
	}
	key := Key{Agent: in.Agent, User: in.User, UserVerified: true, Tool: in.Tool, ParamsDigest: digest,
		PolicyVersion: "v1", Rule: in.Rule, Required: 1}
	approver := Approver{ID: "alice", Kind: Human, Scopes: []Scope{{Agents: []string{".*"}, Tools: []string{".*"}}}}
	b.ReportAllocs()
	for b.Loop() {
		r, err := e.Request(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Approve(ctx, r.ID, approver, "ok"); err != nil {
			b.Fatal(err)
		}
		if _, err := e.Redeem(ctx, r.ID, key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyWebhook(b *testing.B) {
	body, err := WebhookPayload(webhookRequest(), "https://portcullis.example/approvals/")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	header := SignWebhook(testSecret, body, now)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyWebhook(testSecret, header, body, now, 0); err != nil {
			b.Fatal(err)
		}
	}
}
