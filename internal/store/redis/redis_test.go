package redis

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/portcullis-ai/portcullis/internal/behavior"
	"github.com/portcullis-ai/portcullis/internal/behavior/behaviortest"
)

func client(t testing.TB) *goredis.Client {
	addr := os.Getenv("PORTCULLIS_TEST_REDIS")
	if addr == "" {
		t.Skip("PORTCULLIS_TEST_REDIS is not set")
	}
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", addr, err)
	}
	return c
}

func TestBehaviorStoreContract(t *testing.T) {
	c := client(t)
	prefix := "pcl:test:" + time.Now().Format("150405.000000") + ":"
	behaviortest.Run(t, func(*testing.T) behavior.Store { return NewBehaviorStore(c, BehaviorOptions{Prefix: prefix}) })
}

func TestBehaviorStoreDown(t *testing.T) {
	// A store that cannot be reached is an error, never a zero count.
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	s := NewBehaviorStore(c, BehaviorOptions{})
	if _, err := s.Record(context.Background(), behavior.Call{Agent: "a", Tool: "t", At: behaviortest.T0}, behavior.Query{BurstWindow: time.Minute}); err == nil {
		t.Error("Record on an unreachable redis succeeded")
	}
	if _, err := s.Count(context.Background(), "a", "t", time.Minute, behaviortest.T0); err == nil {
		t.Error("Count on an unreachable redis succeeded")
	}
	tr := behavior.NewTracker(s, behavior.Config{})
	if _, err := tr.Observe(context.Background(), behavior.Call{Agent: "a", Tool: "t"}, nil); err == nil {
		t.Error("Observe on an unreachable redis succeeded")
	}
}

func TestNonceStore(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	s := NewNonceStore(c, "pcl:test:nonce:"+time.Now().Format("150405.000000")+":")
	fresh, err := s.Use(ctx, "k1\x00n1", 200*time.Millisecond)
	if err != nil || !fresh {
		t.Fatalf("first use: %v %v", fresh, err)
	}
	if fresh, err := s.Use(ctx, "k1\x00n1", 200*time.Millisecond); err != nil || fresh {
		t.Fatalf("replay: %v %v", fresh, err)
	}
	if fresh, _ := s.Use(ctx, "k2\x00n1", time.Second); !fresh {
		t.Error("same nonce under another key is not a replay")
	}
	// Concurrent uses of one nonce: exactly one is fresh.
	var wg sync.WaitGroup
	var freshCount atomic.Int32
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if f, err := s.Use(ctx, "race", time.Second); err == nil && f {
				freshCount.Add(1)
			}
		}()
	}
	wg.Wait()
	if freshCount.Load() != 1 {
		t.Errorf("%d concurrent uses were fresh, want 1", freshCount.Load())
	}
	// Redis expires by its own clock, so this one test really waits (200 ms).
	time.Sleep(300 * time.Millisecond)
	if fresh, err := s.Use(ctx, "k1\x00n1", time.Second); err != nil || !fresh {
		t.Errorf("after expiry: %v %v", fresh, err)
	}
}

func TestSessionStoreContract(t *testing.T) {
	c := client(t)
	prefix := "pcl:test:" + time.Now().Format("150405.000000") + ":sess:"
	behaviortest.RunSessions(t, func(_ *testing.T, opt behavior.SessionOptions) behavior.SessionStore {
		return NewSessionStore(c, prefix, opt)
	})
}

func TestProposalsAndLinksContract(t *testing.T) {
	c := client(t)
	s := NewSessionStore(c, "pcl:test:"+time.Now().Format("150405.000000")+":sess:", behavior.SessionOptions{})
	t.Run("proposals", func(t *testing.T) { behaviortest.RunProposals(t, s) })
	t.Run("links", func(t *testing.T) { behaviortest.RunLinks(t, s) })
}
