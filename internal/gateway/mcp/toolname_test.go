package mcp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// tools/call with a name guard.Check refuses (huge, a newline, a bidi override) is refused and
// recorded as an invalid_tool_name DENY with the name cut; nothing reaches the upstream.
func TestCallRefusesInvalidToolNames(t *testing.T) {
	h := newHarness(t, 0, time.Second)
	ctx := context.Background()
	for _, name := range []string{"up__echo" + strings.Repeat("x", 300<<10), "up__echo\n", "up__\u202eecho"} {
		r := h.call(t, ctx, name, map[string]any{"text": "hi"})
		if !r.IsError || resultText(r) != msgUnavailable {
			t.Errorf("name of %d bytes: error=%v %q", len(name), r.IsError, resultText(r))
		}
	}
	if n := h.calls["echo"].Load(); n != 0 {
		t.Errorf("upstream echo ran %d times", n)
	}
	refused := 0
	if err := h.store.Scan(ctx, 0, func(e ledger.Entry) error {
		r, err := ledger.ParseRecord(e.Data)
		if err != nil {
			return err
		}
		if len(r.Tool) > 256 {
			t.Errorf("a %s record holds a tool name of %d bytes", r.Kind, len(r.Tool))
		}
		if r.Kind == ledger.KindDecision && r.Decision == "deny" && strings.HasPrefix(r.Reason, "invalid_tool_name") {
			refused++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if refused != 3 {
		t.Errorf("%d invalid_tool_name denials recorded, want 3", refused)
	}
}
