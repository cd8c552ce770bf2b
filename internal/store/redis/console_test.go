package redis

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/console"
	"github.com/portcullis-ai/portcullis/internal/store/storetest"
)

var _ console.SessionStore = (*ConsoleSessions)(nil)

func TestConsoleSessionsContract(t *testing.T) {
	c := client(t)
	storetest.RunConsoleSessions(t, func(t *testing.T) func() console.SessionStore {
		prefix := "pcl:test:console:" + time.Now().Format("150405.000000000") + ":"
		t.Cleanup(func() {
			keys, _ := c.Keys(context.Background(), prefix+"*").Result()
			if len(keys) > 0 {
				c.Del(context.Background(), keys...)
			}
		})
		return func() console.SessionStore { return NewConsoleSessions(c, prefix) }
	})
}

// A sign-in at the cap removes at most consoleSweep of the sessions left idle, not all of them
// in one script: its work does not grow with the sessions held. The sessions left idle are
// still collected, consoleSweep by each sign-in.
func TestConsoleSessionsSweepIsBounded(t *testing.T) {
	ctx := context.Background()
	c := client(t)
	prefix := "pcl:test:consolesweep:" + time.Now().Format("150405.000000000") + ":"
	t.Cleanup(func() {
		keys, _ := c.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	})
	st := NewConsoleSessions(c, prefix)
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	const n = 3*consoleSweep + 10
	for i := range n {
		if ok, err := st.Create(ctx, sha256.Sum256(fmt.Appendf(nil, "idle-%d", i)), []byte("d"), t0, t0.Add(time.Minute), t0.Add(time.Hour), n); err != nil || !ok {
			t.Fatalf("Create %d: %v %v", i, ok, err)
		}
	}
	stored := func() int {
		t.Helper()
		m := 0
		for i := range n {
			_, keys := st.keys(sha256.Sum256(fmt.Appendf(nil, "idle-%d", i)))
			k, err := c.Exists(ctx, keys[1]).Result()
			if err != nil {
				t.Fatal(err)
			}
			m += int(k)
		}
		return m
	}
	// Every one of them is idle past its deadline; the store is at its cap.
	later := t0.Add(2 * time.Minute)
	if ok, err := st.Create(ctx, sha256.Sum256([]byte("new-0")), []byte("d"), later, later.Add(time.Minute), later.Add(time.Hour), n); err != nil || !ok {
		t.Fatalf("a sign-in at the cap with sessions left idle: %v %v", ok, err)
	}
	if left := stored(); left != n-consoleSweep {
		t.Fatalf("one sign-in removed %d sessions left idle, want %d (the bound)", n-left, consoleSweep)
	}
	for i := 1; stored() > 0; i++ {
		if i > n/consoleSweep+1 {
			t.Fatalf("%d sessions left idle remain after %d sign-ins", stored(), i)
		}
		if ok, err := st.Create(ctx, sha256.Sum256(fmt.Appendf(nil, "new-%d", i)), []byte("d"), later, later.Add(time.Minute), later.Add(time.Hour), n); err != nil || !ok {
			t.Fatalf("sign-in %d: %v %v", i, ok, err)
		}
	}
}
