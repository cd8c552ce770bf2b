package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/console"
)

// RunConsoleSessions is the contract of console.SessionStore. open returns a store on one
// backing shared by every call within a subtest (two calls: two replicas), empty at the first.
func RunConsoleSessions(t *testing.T, open func(t *testing.T) func() console.SessionStore) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	key := func(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }
	create := func(t *testing.T, st console.SessionStore, k string, data []byte, now time.Time, idle, ttl time.Duration, max int) bool {
		t.Helper()
		ok, err := st.Create(ctx, key(k), data, now, now.Add(idle), now.Add(ttl), max)
		if err != nil {
			t.Fatalf("Create(%s): %v", k, err)
		}
		return ok
	}
	touch := func(t *testing.T, st console.SessionStore, k string, now time.Time, idle time.Duration) []byte {
		t.Helper()
		d, err := st.Touch(ctx, key(k), now, idle)
		if err != nil {
			t.Fatalf("Touch(%s): %v", k, err)
		}
		return d
	}

	t.Run("read at another replica, binary data, delete everywhere", func(t *testing.T) {
		o := open(t)
		a, b := o(), o()
		data := []byte("{\"v\":1}\x00\xff bytes")
		if !create(t, a, "tok", data, t0, time.Minute, time.Hour, 10) {
			t.Fatal("Create refused under the cap")
		}
		if got := touch(t, b, "tok", t0.Add(time.Second), time.Minute); !bytes.Equal(got, data) {
			t.Fatalf("Touch at the other replica = %q, want %q", got, data)
		}
		if got := touch(t, b, "other", t0, time.Minute); got != nil {
			t.Fatalf("Touch of an unknown key = %q", got)
		}
		if err := b.Delete(ctx, key("tok")); err != nil {
			t.Fatal(err)
		}
		if got := touch(t, a, "tok", t0.Add(2*time.Second), time.Minute); got != nil {
			t.Fatalf("Touch after Delete at the other replica = %q", got)
		}
		if err := a.Delete(ctx, key("tok")); err != nil {
			t.Fatalf("Delete of a deleted session: %v", err)
		}
	})

	t.Run("idle deadline moves on use, by the caller's clock", func(t *testing.T) {
		st := open(t)()
		create(t, st, "tok", []byte("d"), t0, time.Minute, time.Hour, 10)
		// Used every 50s, the session lives past its first idle deadline.
		for i := 1; i <= 4; i++ {
			if touch(t, st, "tok", t0.Add(time.Duration(i)*50*time.Second), time.Minute) == nil {
				t.Fatalf("session gone at use %d", i)
			}
		}
		// A look without moving the deadline (idle 0) keeps it where the last use put it.
		last := t0.Add(200 * time.Second)
		if touch(t, st, "tok", last.Add(59*time.Second), 0) == nil {
			t.Fatal("session gone before its idle deadline")
		}
		if touch(t, st, "tok", last.Add(time.Minute), 0) != nil {
			t.Fatal("session live at its idle deadline after a look that should not have moved it")
		}
		// Expired sessions are removed: an earlier clock does not bring it back.
		if touch(t, st, "tok", t0.Add(time.Second), time.Minute) != nil {
			t.Fatal("an expired session came back")
		}
	})

	t.Run("absolute deadline however busy", func(t *testing.T) {
		st := open(t)()
		create(t, st, "tok", []byte("d"), t0, time.Minute, 5*time.Minute, 10)
		now := t0
		for now.Add(30 * time.Second).Before(t0.Add(5 * time.Minute)) {
			now = now.Add(30 * time.Second)
			if touch(t, st, "tok", now, time.Minute) == nil {
				t.Fatalf("session gone at %v, before its absolute deadline", now.Sub(t0))
			}
		}
		if touch(t, st, "tok", t0.Add(5*time.Minute), time.Minute) != nil {
			t.Fatal("session live at its absolute deadline")
		}
	})

	t.Run("cap across replicas, expired sessions make room", func(t *testing.T) {
		o := open(t)
		a, b := o(), o()
		if !create(t, a, "a1", []byte("d"), t0, time.Minute, time.Hour, 3) ||
			!create(t, b, "b1", []byte("d"), t0, 2*time.Minute, time.Hour, 3) ||
			!create(t, a, "a2", []byte("d"), t0, 2*time.Minute, time.Hour, 3) {
			t.Fatal("refused under the cap")
		}
		if create(t, b, "b2", []byte("d"), t0.Add(time.Second), time.Minute, time.Hour, 3) {
			t.Fatal("a fourth session passed a cap of three held by two replicas")
		}
		if touch(t, a, "b2", t0.Add(time.Second), time.Minute) != nil {
			t.Fatal("a refused session was stored")
		}
		// a1 is idle past its deadline at t0+1m: it no longer counts.
		if !create(t, b, "b2", []byte("d"), t0.Add(time.Minute), time.Minute, time.Hour, 3) {
			t.Fatal("an idle-expired session still held a place")
		}
		if touch(t, a, "a1", t0, time.Minute) != nil {
			t.Fatal("the session swept to make room is still there")
		}
		if touch(t, a, "b1", t0.Add(time.Minute), time.Minute) == nil || touch(t, a, "a2", t0.Add(time.Minute), time.Minute) == nil {
			t.Fatal("a live session was swept")
		}
	})

	t.Run("concurrent sign-ins never pass the cap", func(t *testing.T) {
		o := open(t)
		var wg sync.WaitGroup
		var won atomic.Int32
		for i := range 12 {
			st := o()
			wg.Go(func() {
				ok, err := st.Create(ctx, key(string(rune('a'+i))), []byte("d"), t0, t0.Add(time.Minute), t0.Add(time.Hour), 5)
				if err != nil {
					t.Error(err)
				}
				if ok {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		if n := won.Load(); n != 5 {
			t.Fatalf("%d of 12 concurrent sign-ins passed a cap of 5", n)
		}
	})
}
