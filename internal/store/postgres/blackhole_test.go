package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/postgres/pgtest"
)

// blackhole is a loopback TCP proxy to the test server that can be turned into a black hole:
// from then on it accepts connections and never answers, and the connections it was forwarding
// go silent (the server side is dropped, the client side stays open) — PostgreSQL behind a
// dead network.
type blackhole struct {
	ln     net.Listener
	target string
	dead   atomic.Bool
	mu     sync.Mutex
	ups    []net.Conn
	held   []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	go b.serve()
	t.Cleanup(b.shutdown)
	return b
}

// shutdown closes everything, so that the pool and the ledger close at once.
func (b *blackhole) shutdown() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range append(b.ups, b.held...) {
		c.Close()
	}
}

func (b *blackhole) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.held = append(b.held, c)
		b.mu.Unlock()
		if b.dead.Load() {
			continue // accepted, never answered
		}
		up, err := net.Dial("tcp", b.target)
		if err != nil {
			c.Close()
			continue
		}
		b.mu.Lock()
		b.ups = append(b.ups, up)
		b.mu.Unlock()
		go func() { _, _ = io.Copy(up, c) }()
		go func() { _, _ = io.Copy(c, up) }()
	}
}

// kill makes the proxy a black hole.
func (b *blackhole) kill() {
	b.dead.Store(true)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, up := range b.ups {
		up.Close() // the client's side stays open and hears nothing more
	}
}

// With PostgreSQL black-holed, an Append whose caller commits its own batch (it found the
// writer's seat free) returns by its deadline — the decision timeout — with an error, instead
// of holding the decision for the ledger's 30-second commit bound.
func TestLedgerAppendBoundedByDeadlineWhenBlackholed(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	bh := newBlackhole(t, u.Host)
	u.Host = bh.ln.Addr().String()
	st, err := NewLedger(context.Background(), pgtest.Pool(t, u.String(), schema))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ledger.GenerateKeys(t.TempDir(), "portcullis.test/ledger")
	if err != nil {
		t.Fatal(err)
	}
	vs, _, err := keys.Verifiers()
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(context.Background(), ledger.Options{Store: st, Signer: keys.Signer, Verifiers: vs, HashKey: keys.HashKey})
	if err != nil {
		t.Fatal(err)
	}
	rec := func() *ledger.Record {
		return &ledger.Record{Kind: ledger.KindDecision, DecisionID: "dec_1", Tool: "t", Decision: "ALLOW"}
	}
	if _, err := l.Append(context.Background(), rec()); err != nil {
		t.Fatalf("append before the black hole: %v", err)
	}
	bh.kill()
	const timeout = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	_, err = l.Append(ctx, rec())
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("append through a black-holed PostgreSQL succeeded")
	}
	if !errors.Is(err, ledger.ErrNotDurable) && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("append error %v, want ErrNotDurable or the deadline", err)
	}
	// The bound is the deadline plus the driver's cancellation (a few seconds at most), far
	// below the 30-second commit bound it used to wait.
	if elapsed > timeout+5*time.Second {
		t.Errorf("append returned after %v; the caller's deadline was %v", elapsed, timeout)
	}
	bh.shutdown()
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelClose()
	_ = l.Close(closeCtx)
}
