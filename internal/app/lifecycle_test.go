package app

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// Parts start in the order they were registered and stop in reverse, each once; background work
// runs until stop and stop waits for it; a part that fails to start leaves the started ones for
// Close to stop, and the error names it.
func TestLifecycleOrder(t *testing.T) {
	var l lifecycle
	var order []string
	var running atomic.Bool
	l.opened("store", func(context.Context) error { order = append(order, "stop store"); return nil })
	l.background("worker", func(ctx context.Context) {
		running.Store(true)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // stop must wait for this
		running.Store(false)
		order = append(order, "worker returned")
	})
	l.opened("ledger", func(context.Context) error { order = append(order, "stop ledger"); return errors.New("disk gone") })
	ctx, cancel := context.WithCancel(context.Background())
	if err := l.start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel() // Open's context ending does not stop the work: only Close does
	for deadline := time.Now().Add(5 * time.Second); !running.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("background work never ran")
		}
	}
	time.Sleep(30 * time.Millisecond)
	if !running.Load() {
		t.Fatal("background work ended with Open's context")
	}
	l.stop(context.Background(), slog.New(slog.DiscardHandler))
	l.stop(context.Background(), slog.New(slog.DiscardHandler)) // once
	if want := []string{"stop ledger", "worker returned", "stop store"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	if err := l.start(context.Background()); err == nil {
		t.Fatal("started after close")
	}
	if got := l.names(); !slices.Equal(got, []string{"store", "worker", "ledger"}) {
		t.Fatalf("names %v", got)
	}

	var m lifecycle
	stopped := 0
	m.opened("a", func(context.Context) error { stopped++; return nil })
	m.parts = append(m.parts, &part{name: "broken", start: func(context.Context) error { return errors.New("no") }, stop: func(context.Context) error { stopped += 10; return nil }})
	if err := m.start(context.Background()); err == nil || err.Error() != "start broken: no" {
		t.Fatalf("start: %v", err)
	}
	m.stop(context.Background(), slog.New(slog.DiscardHandler))
	if stopped != 1 {
		t.Fatalf("stopped %d, want only the part that started", stopped)
	}
}

// Open registers every part an app has, in the order Close must undo.
func TestOpenRegistersParts(t *testing.T) {
	g := newGateway(t)
	want := []string{"data directory lock", "tracing", "stores", "ledger", "audit index", "api keys", "configuration and policy",
		"alerts", "alert clock", "nonce sweep", "outcome claim sweep", "approval expiry", "approver keys"}
	if got := g.app.parts.names(); !slices.Equal(got, want) {
		t.Fatalf("parts %v, want %v", got, want)
	}
}
