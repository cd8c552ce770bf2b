package mcp

import (
	"fmt"
	"testing"
)

// The links a tool's results name are remembered in a bounded ring: a flood of distinct URIs
// keeps the newest maxLinks and no more.
func TestResourceLinksBounded(t *testing.T) {
	var b boundedMap
	u := &upstream{name: "a"}
	for i := range 3 * maxLinks {
		b.put(fmt.Sprintf("x://%d", i), u)
	}
	if len(b.m) != maxLinks || len(b.order) != maxLinks {
		t.Fatalf("after %d links: %d in the map, %d in the ring; want %d", 3*maxLinks, len(b.m), len(b.order), maxLinks)
	}
	if b.m["x://0"] != nil || b.m[fmt.Sprintf("x://%d", 3*maxLinks-1)] != u {
		t.Error("the oldest link was kept or the newest dropped")
	}
	b.put(fmt.Sprintf("x://%d", 3*maxLinks-1), u) // again: no growth
	if len(b.order) != maxLinks {
		t.Errorf("a repeated link grew the ring to %d", len(b.order))
	}
}
