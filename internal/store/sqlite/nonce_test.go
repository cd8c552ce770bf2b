package sqlite

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestNonces(t *testing.T) {
	ctx := context.Background()
	clk := &testClock{t: time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "nonces.db")
	s, err := OpenNonces(ctx, path, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	use := func(s *Nonces, key string, ttl time.Duration) bool {
		t.Helper()
		fresh, err := s.Use(ctx, key, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return fresh
	}
	if !use(s, "k1\x00n1", 5*time.Minute) {
		t.Fatal("first use not fresh")
	}
	if use(s, "k1\x00n1", 5*time.Minute) {
		t.Fatal("replay fresh")
	}
	if !use(s, "k2\x00n1", 5*time.Minute) {
		t.Error("the same nonce under another key is not a replay")
	}
	if !use(s, "k1\x00n1\x00", 5*time.Minute) || !use(s, "k1", 5*time.Minute) {
		t.Error("keys differing after a NUL were taken as equal")
	}

	// Concurrent uses of one nonce: exactly one is fresh.
	var wg sync.WaitGroup
	var freshCount atomic.Int32
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if f, err := s.Use(ctx, "race", time.Minute); err == nil && f {
				freshCount.Add(1)
			}
		}()
	}
	wg.Wait()
	if freshCount.Load() != 1 {
		t.Errorf("%d concurrent uses were fresh, want 1", freshCount.Load())
	}

	// Restart: the nonce is still known to a store opened on the same file.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenNonces(ctx, path, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	clk.add(4 * time.Minute)
	if use(s2, "k1\x00n1", 5*time.Minute) {
		t.Fatal("replay after reopening fresh")
	}
	// After its window the nonce may be used again, and expired rows are swept.
	clk.add(2 * time.Minute)
	if !use(s2, "k1\x00n1", 5*time.Minute) {
		t.Error("an expired nonce is not fresh")
	}
	clk.add(10 * time.Minute)
	if !use(s2, "later", 5*time.Minute) {
		t.Fatal("fresh key refused")
	}
	if n, err := s2.Len(ctx); err != nil || n != 1 {
		t.Errorf("after the sweep %d nonces remain (%v), want 1", n, err)
	}
}

// A store that cannot be written reports an error: the verifier then denies (identity_unavailable).
func TestNoncesClosedFails(t *testing.T) {
	ctx := context.Background()
	s, err := OpenNonces(ctx, filepath.Join(t.TempDir(), "nonces.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if fresh, err := s.Use(ctx, "k", time.Minute); err == nil || fresh {
		t.Errorf("closed store: fresh=%v err=%v", fresh, err)
	}
}
