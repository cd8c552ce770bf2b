package mcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os/exec"
	"slices"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Upstream is one MCP server behind the gateway.
type Upstream struct {
	// Name namespaces the upstream's tools and prompts ("<name>__<tool>"). It may be empty only
	// when it is the only upstream: tools then keep their own names (the stdio wrapper's default).
	Name string
	// Transport connects to it: &sdk.CommandTransport{...} or &sdk.StreamableClientTransport{...}.
	Transport sdk.Transport
	// NewTransport, when set, replaces Transport and makes the upstream restartable: when its
	// session ends (a stdio child exited, a remote server dropped the session), the next request
	// connects again with a fresh transport — at most once a second — and its tool definitions
	// are scanned and pinned again before any call reaches it.
	NewTransport func() sdk.Transport
}

type upstream struct {
	name   string
	client *sdk.Client
	mk     func() sdk.Transport // nil: not restartable
	tasks  *taskTools           // which of its tools require MCP tasks (tasks.go)

	mu      sync.Mutex
	init    *sdk.InitializeResult // nil until the first handshake; read with initResult
	lastErr error                 // why it is down, when it is
	cs      *sdk.ClientSession
	down    bool // cs has ended
	closed  bool
	lastTry time.Time
	// connecting, while a reconnection is in flight, is closed when it ends.
	connecting chan struct{}
	// subs: the resource URIs the gateway subscribed to on this upstream for its agents. A new
	// session starts with none, so they are renewed on every reconnection.
	subs map[string]bool
}

// upstreamSession pins the revision the gateway speaks to upstreams: 2025-11-25, the latest
// session-based one (what agents and servers speak today). Under 2026-07-28 a resource
// subscription becomes a subscriptions/listen stream that lives as long as the subscription,
// which the gateway does not proxy yet.
var upstreamSession = &sdk.ClientSessionOptions{ProtocolVersion: "2025-11-25"}

// ErrUpstreamDown: the upstream's session ended and it cannot be (or was just) reconnected.
var ErrUpstreamDown = errors.New("mcp: upstream unavailable")

// restartBackoff bounds reconnection attempts to a failing upstream.
const restartBackoff = time.Second

// session returns the upstream's live session, reconnecting a restartable one that ended. The
// upstream's mutex is never held across the connection (a child's start and handshake take up
// to CallTimeout): one request connects, and the others for that upstream wait for it only as
// long as their own context allows; every other upstream, and every list, goes on meanwhile.
func (g *Gateway) session(ctx context.Context, u *upstream) (*sdk.ClientSession, error) {
	return g.sessionWait(ctx, u, true)
}

// sessionNow is session for a caller that must not wait for another's reconnection (a listing
// over every upstream): an upstream being reconnected is unavailable to it for now.
func (g *Gateway) sessionNow(ctx context.Context, u *upstream) (*sdk.ClientSession, error) {
	return g.sessionWait(ctx, u, false)
}

func (g *Gateway) sessionWait(ctx context.Context, u *upstream, wait bool) (*sdk.ClientSession, error) {
	for {
		u.mu.Lock()
		switch {
		case u.closed:
			u.mu.Unlock()
			return nil, fmt.Errorf("%w: %q is closed", ErrUpstreamDown, u.name)
		case !u.down:
			cs := u.cs
			u.mu.Unlock()
			return cs, nil
		case u.connecting != nil:
			ch := u.connecting
			u.mu.Unlock()
			if !wait {
				return nil, fmt.Errorf("%w: %q is reconnecting", ErrUpstreamDown, u.name)
			}
			select {
			case <-ch:
				continue // connected or failed: look again
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %q is reconnecting: %w", ErrUpstreamDown, u.name, ctx.Err())
			}
		case u.mk == nil || time.Since(u.lastTry) < restartBackoff:
			u.mu.Unlock()
			return nil, fmt.Errorf("%w: %q", ErrUpstreamDown, u.name)
		}
		u.lastTry = time.Now()
		done := make(chan struct{})
		u.connecting = done
		subs := slices.Collect(maps.Keys(u.subs))
		u.mu.Unlock()
		cs, err := g.connect(ctx, u, subs)
		u.mu.Lock()
		u.connecting = nil
		close(done)
		switch {
		case err != nil:
			u.lastErr = err
			u.mu.Unlock()
			return nil, fmt.Errorf("%w: reconnect %q: %v", ErrUpstreamDown, u.name, err)
		case u.closed:
			// Closed while connecting: the new session is nobody's.
			u.mu.Unlock()
			_ = cs.Close()
			return nil, fmt.Errorf("%w: %q is closed", ErrUpstreamDown, u.name)
		}
		first := u.init == nil
		u.cs, u.down, u.init, u.lastErr = cs, false, cs.InitializeResult(), nil
		g.watch(u, cs)
		u.mu.Unlock()
		if first {
			// Down since start: its tools were never offered. Tell the agents the list changed.
			g.toolsChanged(ctx)
		}
		return cs, nil
	}
}

// connect opens a new session to u (bounded by CallTimeout, on its own context: the request
// that happened to trigger it may end first), asks it for the agents' log level and renews the
// gateway's resource subscriptions subs before anyone uses it. Each subscription was decided
// when its agent subscribed; this only restores the gateway's own upstream state.
func (g *Gateway) connect(ctx context.Context, u *upstream, subs []string) (*sdk.ClientSession, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.o.CallTimeout)
	defer cancel()
	cs, err := u.client.Connect(cctx, u.mk(), upstreamSession)
	if err != nil {
		return nil, err
	}
	g.log.Warn("upstream reconnected", slog.String("upstream", u.name))
	g.askLevelAgain(cctx, u, cs)
	for _, uri := range subs {
		if err := cs.Subscribe(cctx, &sdk.SubscribeParams{URI: uri}); err != nil {
			g.log.Warn("resource subscription not renewed", slog.String("upstream", u.name), slog.String("uri", uri), slog.Any("error", err))
		}
	}
	return cs, nil
}

// retryLost runs call on cs and, if the upstream answered that it does not know cs's session
// (HTTP 404 to a request carrying its session id: a remote server that restarted), drops cs,
// reconnects and runs call once more on the new session. Only that answer is retried: the
// server refused the request before running it, so running it again cannot run it twice. Any
// other failure — a timeout, a reset connection, an error result — may come after the request
// ran, and is returned as it is.
func retryLost[T any](ctx context.Context, g *Gateway, u *upstream, cs *sdk.ClientSession, call func(*sdk.ClientSession) (T, error)) (T, error) {
	res, err := call(cs)
	if err == nil || !errors.Is(err, sdk.ErrSessionMissing) {
		return res, err
	}
	u.mu.Lock()
	if u.cs == cs && !u.closed {
		// The session is gone for certain: reconnect now, not after the restart backoff.
		u.down, u.lastTry = true, time.Time{}
	}
	u.mu.Unlock()
	_ = cs.Close()
	next, serr := g.session(ctx, u)
	if serr != nil {
		return res, err
	}
	g.log.Info("upstream lost its session (restarted?): reconnected, request sent again", slog.String("upstream", u.name))
	return call(next)
}

// reconnect brings back, without waiting for the next request, an upstream that agents hold
// subscriptions on: until it is back no update can reach them. It retries every
// restartBackoff until the session is back, the upstream has no subscriptions or the gateway
// closes.
func (g *Gateway) reconnect(u *upstream) {
	t := time.NewTimer(restartBackoff)
	defer t.Stop()
	for {
		u.mu.Lock()
		want := u.mk != nil && !u.closed && u.down && len(u.subs) > 0
		u.mu.Unlock()
		if !want {
			return
		}
		if _, err := g.session(context.Background(), u); err == nil {
			return
		}
		t.Reset(restartBackoff)
		select {
		case <-g.done:
			return
		case <-t.C:
		}
	}
}

// maxRetryBackoff caps the wait between attempts to reach an upstream that was down at start.
const maxRetryBackoff = 30 * time.Second

// retryDown reconnects, in the background, an upstream that could not be reached at start:
// attempts restartBackoff apart, doubling up to maxRetryBackoff, until it answers or the gateway
// closes. Each failure is logged with its cause.
func (g *Gateway) retryDown(u *upstream) {
	defer g.wg.Done()
	wait := restartBackoff
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-t.C:
		}
		u.mu.Lock()
		want := !u.closed && u.down
		u.mu.Unlock()
		if !want {
			return
		}
		if _, err := g.session(context.Background(), u); err == nil {
			return
		} else {
			g.log.Warn("upstream still unavailable", slog.String("upstream", u.name), slog.String("error", rootCause(err).Error()), slog.Duration("retry_in", min(2*wait, maxRetryBackoff)))
		}
		wait = min(2*wait, maxRetryBackoff)
		t.Reset(wait)
	}
}

// Unavailable names each upstream that is down and why ("fs: exec: ...": its last failure),
// in configuration order; empty when every upstream is up.
func (g *Gateway) Unavailable() []string {
	var out []string
	for _, u := range g.ups {
		u.mu.Lock()
		down, cause := u.down && !u.closed, u.lastErr
		u.mu.Unlock()
		if !down {
			continue
		}
		msg := "session ended"
		if cause != nil {
			msg = rootCause(cause).Error()
		}
		out = append(out, fmt.Sprintf("%q: %s", u.name, msg))
	}
	return out
}

// initResult is u's last handshake (nil if it never completed one).
func (u *upstream) initResult() *sdk.InitializeResult {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.init
}

// watch marks u down when cs ends, so the next request reconnects and re-pins. Called with
// u.mu held and u not closed, so no watcher starts after Close.
func (g *Gateway) watch(u *upstream, cs *sdk.ClientSession) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		_ = cs.Wait()
		// Close too: a session the peer ended still holds a listener goroutine until closed.
		_ = cs.Close()
		u.mu.Lock()
		if u.cs == cs {
			u.down = true
		}
		u.mu.Unlock()
		g.mu.Lock()
		delete(g.scannedUp, u)
		g.mu.Unlock()
		g.reconnect(u)
	}()
}

// UpstreamError is an upstream that could not be reached at start: its command did not run, its
// URL did not answer, or it did not complete the MCP handshake.
type UpstreamError struct {
	Name string // "" for the stdio wrapper's one unnamed upstream
	Err  error
}

func (e *UpstreamError) Error() string {
	if e.Name == "" {
		return "mcp upstream: " + rootCause(e.Err).Error()
	}
	return fmt.Sprintf("mcp upstream %q: %s", e.Name, rootCause(e.Err).Error())
}

func (e *UpstreamError) Unwrap() error { return e.Err }

// rootCause is the innermost error a user can act on: the SDK wraps an exec or dial error in
// layers ("connect: calling initialize: ...") that name its internals, not the mistake. An
// *exec.Error or a *net.OpError stops the unwrapping (they say what and where).
func rootCause(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe
	}
	return err
}
