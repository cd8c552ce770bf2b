// Package mcp is the MCP gateway: an MCP server to the agent and an MCP client to each upstream
// server (a stdio child or a remote Streamable HTTP server). Every tools/call, resources/read and
// prompts/get becomes a guard.Request and runs only when guard.Check allows it; results come back
// through guard.CheckResult; tools/list shows an agent only the tools its policy could ever let it
// call; tool definitions are scanned for poisoning and pinned so a changed definition is blocked
// until re-approved. An upstream's sampling and elicitation requests reach the agent only as
// configured, and then each is decided like a call (serverreq.go); their log messages reach the
// agent a line can be attributed to, inspected like results (logs.go).
//
// It owns the MCP wiring only. Of the decision path it knows the guard's port (guard.Port) and
// nothing else: no policy, inspection, approval or ledger, no store, app, cli or HTTP server
// (internal/archtest enforces it). Listing, scanning definitions and recording what the gateway
// decides on its own all go through the port.
package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
)

// Reserved tool names: resources and prompts are governed by the same policy under these names.
const (
	// ToolResourcesRead is decided with params {"server": NAME, "uri": URI}.
	ToolResourcesRead = "mcp.resources.read"
	// ToolPromptsGet is decided with params {"server": NAME, "name": PROMPT, "arguments": {...}}.
	ToolPromptsGet = "mcp.prompts.get"
	// ToolSamplingCreateMessage decides an upstream's sampling/createMessage (Options.Sampling),
	// with the request's params plus the upstream's name: {"server": NAME, "messages": [...],
	// "systemPrompt": TEXT, "maxTokens": N, ...}.
	ToolSamplingCreateMessage = "mcp.sampling.createMessage"
	// ToolElicitationCreate decides an upstream's elicitation/create (Options.Elicitation), with
	// {"server": NAME, "mode": "form", "message": TEXT, "requestedSchema": {...}}.
	ToolElicitationCreate = "mcp.elicitation.create"
	// ApprovalArg is the argument (or _meta key) carrying an approval ID on a retry. It is stripped
	// before the parameters are decided, digested or forwarded.
	ApprovalArg = "_portcullis_approval_id"
	// Separator joins an upstream's name and its tool's name: "<server>__<tool>".
	Separator = "__"
)

// Errors callers branch on.
var (
	ErrUnauthenticated = errors.New("mcp: unauthenticated")
	ErrNoUpstream      = errors.New("mcp: no such upstream")
)

// JSON-RPC error codes of refused resources/read, resources/subscribe, prompts/get and
// completion/complete requests (a refused tools/call is an isError result instead).
const (
	// CodeRefused: the policy refused the request, or it waits for approval (the message says
	// which, and how to retry).
	CodeRefused = -32001
	// CodeNotFound: no upstream serves the resource, prompt or reference (MCP's "resource not
	// found" code).
	CodeNotFound = -32002
)

// Messages shown to agents. They reveal nothing of the policy.
const (
	msgUnavailable = "the tool is unavailable"
	msgFailed      = "the tool failed"
	msgWithheld    = "the tool's result was withheld"
	// msgRefused answers an upstream's server-initiated request that was not allowed.
	msgRefused = "the request was refused"
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

// Options configure a Gateway. Guard is required.
type Options struct {
	// Guard decides every call, result, log line and listing, scans definitions and records
	// what the gateway decides on its own; its result policy treats results and definitions.
	Guard guard.Port
	Pins  *PinStore // nil: definitions are not pinned
	// ApprovalWait is how long a CONSTRAIN call is held waiting for approval before the agent is
	// told it is pending (0: answered pending at once).
	ApprovalWait time.Duration
	// CallTimeout bounds one forwarded call (default 60s): a hung upstream yields an error.
	CallTimeout time.Duration
	Logger      *slog.Logger

	// Sampling and Elicitation let upstreams send sampling/createMessage and elicitation/create
	// (form mode) to the agent. Off (the default), the gateway's client does not even offer the
	// capability. On, a request is forwarded only when exactly one agent session is attached
	// (the stdio wrapper): an upstream session is shared by every agent and the request names no
	// call, so with several sessions there is no telling whose it is, and it is refused. It is
	// then decided by guard.Check under ToolSamplingCreateMessage / ToolElicitationCreate, and
	// the agent's answer goes back through guard.CheckResult like a tool's result.
	Sampling, Elicitation bool

	// StartDown lets New succeed when a restartable upstream cannot be reached: it is marked
	// down (Unavailable names it and the cause), logged, and retried in the background with a
	// backoff from restartBackoff up to maxRetryBackoff until it answers. Off (the stdio
	// wrapper, whose one upstream is everything it serves), New fails with an *UpstreamError.
	StartDown bool

	// RelayLogs passes upstreams' log messages (notifications/message) to the agent session a
	// line can be attributed to (logs.go), at the level that session set with logging/setLevel,
	// each line through guard.CheckNotice. Off, upstreams are never asked for logs and none is
	// relayed; logging/setLevel is answered either way.
	RelayLogs bool
}

// Gateway connects to the upstreams once and serves any number of agent sessions.
type Gateway struct {
	o     Options
	ups   []*upstream
	byKey map[string]*upstream
	log   *slog.Logger

	mu        sync.Mutex
	res       resources          // resource URI → upstream (resources.go)
	scanned   map[string]bool    // definition hashes already scanned and recorded as suspicious
	defOK     map[string]bool    // tool → its last seen definition passed scanning and pinning
	scannedUp map[*upstream]bool // upstreams whose tools were scanned in this process
	servers   []*sdk.Server      // agent-facing servers, told when upstream tools change
	closed    bool
	wg        sync.WaitGroup // rescans, session watchers and reconnections in flight
	done      chan struct{}  // closed by Close: stops reconnection attempts

	// callers holds, when server requests are enabled, who each agent session is (its latest
	// request's caller): a server-initiated request is decided as that agent.
	callers map[*sdk.ServerSession]Caller

	// progress maps the token the gateway puts on a forwarded call to the agent's request, so
	// the upstream's progress notifications reach the agent that asked for them and no other.
	progress    sync.Map // string → progressSink
	progressSeq atomic.Uint64

	logs logRelay
	// calls: the agent sessions with requests in flight per upstream, when server requests are
	// enabled (serverreq.go).
	calls inflight
}

// progressSink is where one forwarded call's progress goes: the agent's session, its own token
// and the context of its request (which keeps the notifications on that request's stream).
type progressSink struct {
	ctx     context.Context
	session *sdk.ServerSession
	token   any
}

type upstream struct {
	name   string
	client *sdk.Client
	mk     func() sdk.Transport // nil: not restartable

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

// New connects to every upstream. On error, whatever connected is closed.
func New(ctx context.Context, o Options, ups []Upstream) (g *Gateway, err error) {
	switch {
	case o.Guard == nil:
		return nil, errors.New("mcp: gateway needs a guard")
	case len(ups) == 0:
		return nil, errors.New("mcp: no upstream servers")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 60 * time.Second
	}
	// Not the named result: every error return sets that to nil before the deferred Close runs,
	// and closing nil panicked — a typo in an upstream's command printed a stack trace.
	gw := &Gateway{o: o, byKey: map[string]*upstream{}, log: o.Logger, scanned: map[string]bool{},
		defOK: map[string]bool{}, scannedUp: map[*upstream]bool{}, callers: map[*sdk.ServerSession]Caller{},
		done: make(chan struct{}), logs: newLogRelay(o.RelayLogs)}
	g = gw
	defer func() {
		if err != nil {
			_ = gw.Close() // the upstreams already connected
		}
	}()
	for _, u := range ups {
		if u.Name == "" && len(ups) > 1 {
			return nil, errors.New("mcp: every upstream needs a name when there are several")
		}
		if strings.Contains(u.Name, Separator) {
			return nil, fmt.Errorf("mcp: upstream name %q must not contain %q", u.Name, Separator)
		}
		if _, dup := g.byKey[u.Name]; dup {
			return nil, fmt.Errorf("mcp: duplicate upstream %q", u.Name)
		}
		copts := &sdk.ClientOptions{
			// No roots: the go-sdk's default offers them, but the gateway has none of its own
			// and does not relay the agent's. Sampling and elicitation are added only when
			// allowed (serverRequestHandlers).
			Capabilities:                &sdk.ClientCapabilities{},
			ToolListChangedHandler:      func(ctx context.Context, _ *sdk.ToolListChangedRequest) { g.toolsChanged(ctx) },
			ProgressNotificationHandler: g.relayProgress,
			ResourceUpdatedHandler:      g.relayResourceUpdated,
		}
		g.serverRequestHandlers(copts, u.Name)
		g.logHandler(copts, u.Name)
		client := sdk.NewClient(&sdk.Implementation{Name: "portcullis", Version: "1"}, copts)
		if o.Elicitation {
			client.AddReceivingMiddleware(titledMultiSelect)
		}
		t := u.Transport
		if u.NewTransport != nil {
			t = u.NewTransport()
		}
		if t == nil {
			return nil, fmt.Errorf("mcp: upstream %q has no transport", u.Name)
		}
		cs, err := client.Connect(ctx, t, upstreamSession)
		if err != nil && (!o.StartDown || u.NewTransport == nil) {
			return nil, &UpstreamError{Name: u.Name, Err: err}
		}
		up := &upstream{name: u.Name, client: client, mk: u.NewTransport}
		if err != nil {
			// Down from the start: serve the others, say so, and keep trying.
			g.log.Error("upstream unavailable at start; retrying in the background", slog.String("upstream", u.Name), slog.String("error", rootCause(err).Error()))
			up.down, up.lastErr, up.lastTry = true, err, time.Now()
			g.wg.Add(1)
			go g.retryDown(up)
		} else {
			up.cs, up.init = cs, cs.InitializeResult()
			up.mu.Lock()
			g.watch(up, cs)
			up.mu.Unlock()
		}
		g.ups = append(g.ups, up)
		g.byKey[u.Name] = up
	}
	return g, nil
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

// Close disconnects every upstream (a stdio child is terminated).
func (g *Gateway) Close() error {
	g.mu.Lock()
	if !g.closed {
		close(g.done)
	}
	g.closed = true
	g.mu.Unlock()
	var errs []error
	for _, u := range g.ups {
		u.mu.Lock()
		u.closed = true
		cs, down := u.cs, u.down
		u.mu.Unlock()
		if cs == nil {
			continue
		}
		if err := cs.Close(); err != nil && !down {
			errs = append(errs, fmt.Errorf("close upstream %q: %w", u.name, err))
		}
	}
	g.wg.Wait()
	return errors.Join(errs...)
}

// Caller is who sends one request: the agent's credentials and, optionally, the invoking user's
// token (verified by the guard like on the decision API).
type Caller struct {
	Credentials identity.Credentials
	// Agent, when set, is the agent the transport already authenticated for the request that
	// carried the message (HTTPAgents); Credentials are then not verified again.
	Agent     *identity.Agent
	UserToken string
}

// UserTokenHeader carries the invoking user's token over Streamable HTTP (as on the LLM gateway).
const UserTokenHeader = "X-Portcullis-User-Token"

// CredentialsFunc returns the caller of one request: from the environment in the stdio wrapper,
// from the HTTP headers (req.GetExtra().Header) behind Streamable HTTP.
type CredentialsFunc func(req sdk.Request) Caller

// EnvCredentials always returns the same API key and user token (stdio wrapper:
// PORTCULLIS_API_KEY, PORTCULLIS_USER_TOKEN).
func EnvCredentials(apiKey, userToken string) CredentialsFunc {
	return func(sdk.Request) Caller {
		return Caller{Credentials: identity.Credentials{APIKey: apiKey}, UserToken: userToken}
	}
}

// HeaderCredentials reads the API key or bearer token, and the user token, of the HTTP request
// that carried the message.
func HeaderCredentials(req sdk.Request) Caller {
	var c identity.Credentials
	ex := req.GetExtra()
	if ex == nil || ex.Header == nil {
		return Caller{}
	}
	h := ex.Header
	c.Ambiguous = len(h.Values("Authorization")) > 1 || len(h.Values("X-API-Key")) > 1
	if auth := h.Get("Authorization"); auth != "" {
		scheme, val, _ := strings.Cut(auth, " ")
		val = strings.TrimSpace(val)
		switch {
		case strings.EqualFold(scheme, "Bearer") && strings.HasPrefix(val, identity.APIKeyPrefix):
			c.APIKey = val
		default:
			c.BearerToken = val
		}
	}
	if k := h.Get("X-API-Key"); k != "" {
		if c.APIKey != "" && c.APIKey != k {
			c.APIKey = "\x00ambiguous"
		} else {
			c.APIKey = k
		}
	}
	return Caller{Credentials: c, UserToken: h.Get(UserTokenHeader)}
}

// Server returns an agent-facing MCP server whose every request is governed by the gateway.
func (g *Gateway) Server(creds CredentialsFunc) *sdk.Server {
	caps := &sdk.ServerCapabilities{Tools: &sdk.ToolCapabilities{ListChanged: true}}
	for _, u := range g.ups {
		ir := u.initResult()
		if ir == nil {
			// Down since start: what it will offer is unknown, and the agent-facing server's
			// capabilities cannot change later. Offer resources, prompts and completions; while
			// it is down they list nothing from it and requests for it fail.
			if caps.Resources == nil {
				caps.Resources = &sdk.ResourceCapabilities{}
			}
			caps.Resources.Subscribe = true
			caps.Prompts, caps.Completions = &sdk.PromptCapabilities{}, &sdk.CompletionCapabilities{}
			continue
		}
		if ir.Capabilities != nil {
			if ir.Capabilities.Resources != nil {
				if caps.Resources == nil {
					caps.Resources = &sdk.ResourceCapabilities{}
				}
				caps.Resources.Subscribe = caps.Resources.Subscribe || ir.Capabilities.Resources.Subscribe
			}
			if ir.Capabilities.Prompts != nil {
				caps.Prompts = &sdk.PromptCapabilities{}
			}
			if ir.Capabilities.Completions != nil {
				caps.Completions = &sdk.CompletionCapabilities{}
			}
			g.offerLogging(caps, ir.Capabilities)
		}
	}
	s := sdk.NewServer(&sdk.Implementation{Name: "portcullis-mcp-gateway", Version: "1"}, &sdk.ServerOptions{Capabilities: caps,
		// The SDK keeps each agent session's subscriptions (so an update reaches only the
		// sessions that subscribed); the gateway decides and forwards the subscription first.
		SubscribeHandler: func(ctx context.Context, r *sdk.SubscribeRequest) error { return g.subscribe(ctx, creds(r), r) },
		// Unsubscribing drops the agent session's subscription only: the upstream session is
		// shared by every agent, another may still be subscribed.
		UnsubscribeHandler: func(context.Context, *sdk.UnsubscribeRequest) error { return nil },
	})
	// logging/setLevel, below the middleware that notes who the session is.
	s.AddReceivingMiddleware(g.setLevelMiddleware)
	s.AddReceivingMiddleware(func(next sdk.MethodHandler) sdk.MethodHandler {
		return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
			if g.o.Sampling || g.o.Elicitation || g.logs.on {
				g.noteCaller(req, creds)
			}
			switch r := req.(type) {
			case *sdk.ListToolsRequest:
				return g.listTools(ctx, creds(req), req)
			case *sdk.CallToolRequest:
				return g.callTool(ctx, creds(req), r)
			case *sdk.ListResourcesRequest:
				return g.listResources(ctx, creds(req), req)
			case *sdk.ListResourceTemplatesRequest:
				return g.listResourceTemplates(ctx, creds(req), req)
			case *sdk.ReadResourceRequest:
				return g.readResource(ctx, creds(req), r)
			case *sdk.ListPromptsRequest:
				return g.listPrompts(ctx, creds(req), req)
			case *sdk.GetPromptRequest:
				return g.getPrompt(ctx, creds(req), r)
			case *sdk.CompleteRequest:
				return g.complete(ctx, creds(req), r)
			}
			return next(ctx, method, req)
		}
	})
	addSentinel(s)
	g.mu.Lock()
	g.servers = append(g.servers, s)
	g.mu.Unlock()
	return s
}

// toolsChanged re-reads every upstream's tools when one says its list changed, so a changed
// definition is caught (and blocked) at once rather than at the agent's next list.
func (g *Gateway) toolsChanged(ctx context.Context) {
	// Not inline: the notification handler must return before the client can send requests.
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.o.CallTimeout)
		defer cancel()
		for _, u := range g.ups {
			g.scan(sctx, nil, u)
		}
		g.relayListChanged()
	}()
}

// relaySentinel is a tool registered on every agent-facing server only so that removing and
// re-adding it makes the SDK send notifications/tools/list_changed to the agents (debounced,
// and to new-protocol subscribers too). The agent never sees it: tools/list and tools/call are
// answered by the gateway.
const relaySentinel = "portcullis.internal.list_changed"

func addSentinel(s *sdk.Server) {
	s.AddTool(&sdk.Tool{Name: relaySentinel, InputSchema: map[string]any{"type": "object"}},
		func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			return nil, errors.New("mcp: not a tool")
		})
}

// relayListChanged tells every connected agent that the tool list changed.
func (g *Gateway) relayListChanged() {
	for _, s := range g.agentServers() {
		s.RemoveTools(relaySentinel)
		addSentinel(s)
	}
}

func (g *Gateway) agentServers() []*sdk.Server {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*sdk.Server(nil), g.servers...)
}

// relayResourceUpdated passes an upstream's notifications/resources/updated (its URI only) to
// the agent sessions subscribed to that URI: the SDK keeps who subscribed, and a subscription
// was decided like a read.
func (g *Gateway) relayResourceUpdated(ctx context.Context, req *sdk.ResourceUpdatedNotificationRequest) {
	if req.Params == nil || req.Params.URI == "" {
		return
	}
	for _, s := range g.agentServers() {
		_ = s.ResourceUpdated(ctx, &sdk.ResourceUpdatedNotificationParams{URI: req.Params.URI})
	}
}

// relayProgress passes an upstream's progress on a forwarded call to the agent that made the
// call, under the agent's own token. The message is dropped: it is upstream text that the
// result inspection never sees.
func (g *Gateway) relayProgress(_ context.Context, req *sdk.ProgressNotificationClientRequest) {
	if req.Params == nil {
		return
	}
	id, _ := req.Params.ProgressToken.(string)
	v, ok := g.progress.Load(id)
	if !ok {
		return
	}
	sink := v.(progressSink)
	_ = sink.session.NotifyProgress(sink.ctx, &sdk.ProgressNotificationParams{ProgressToken: sink.token, Progress: req.Params.Progress, Total: req.Params.Total})
}

// scan lists u's tools and runs each definition through scanning and pinning; agent (nil when
// none asked) is whom the records name.
func (g *Gateway) scan(ctx context.Context, agent *identity.Agent, u *upstream) {
	tools, err := g.upstreamTools(ctx, u, true)
	if err != nil {
		g.log.Warn("upstream tools unavailable", slog.String("upstream", u.name), slog.Any("error", err))
		return
	}
	for _, t := range tools {
		g.definitionOK(ctx, agent, g.qualify(u, t.Name), t)
	}
	g.mu.Lock()
	g.scannedUp[u] = true
	g.mu.Unlock()
}

// usable reports whether a tool's last seen definition passed scanning and pinning; an upstream
// not yet scanned in this process is scanned first.
func (g *Gateway) usable(ctx context.Context, agent *identity.Agent, u *upstream, name string) bool {
	g.mu.Lock()
	done := g.scannedUp[u]
	g.mu.Unlock()
	if !done {
		g.scan(ctx, agent, u)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	ok, seen := g.defOK[name]
	return seen && ok
}

func (g *Gateway) agent(ctx context.Context, c Caller) (*identity.Agent, error) {
	if c.Agent != nil {
		return c.Agent, nil
	}
	// The guard records a credential that fails: an attempt with a bad one is evidence.
	a, err := g.o.Guard.Authenticate(ctx, "mcp", c.Credentials)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrUnauthenticated, identity.Code(err))
	}
	return a, nil
}

// qualify and split map upstream names to agent-facing names.
func (g *Gateway) qualify(u *upstream, name string) string {
	if u.name == "" {
		return name
	}
	return u.name + Separator + name
}

func (g *Gateway) split(name string) (*upstream, string, bool) {
	if reserved(name) {
		// An upstream tool named like a reserved name would ride on rules written for it.
		return nil, "", false
	}
	if u, ok := g.byKey[""]; ok {
		return u, name, true
	}
	srv, tool, ok := strings.Cut(name, Separator)
	if !ok {
		return nil, "", false
	}
	u, ok := g.byKey[srv]
	if !ok {
		return nil, "", false
	}
	return u, tool, true
}

// reserved reports whether name is one of the reserved tool names.
func reserved(name string) bool {
	switch name {
	case ToolResourcesRead, ToolPromptsGet, ToolSamplingCreateMessage, ToolElicitationCreate, ToolLoggingMessage:
		return true
	}
	return false
}

// upstreamTools lists every tool of u (all pages); wait says whether to wait for another
// request's reconnection of u (a scan before a call must; a listing must not).
func (g *Gateway) upstreamTools(ctx context.Context, u *upstream, wait bool) ([]*sdk.Tool, error) {
	cs, err := g.sessionWait(ctx, u, wait)
	if err != nil {
		return nil, err
	}
	var out []*sdk.Tool
	for t, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("list tools of %q: %w", u.name, err)
		}
		out = append(out, t)
		if len(out) > maxListed {
			return nil, fmt.Errorf("list tools of %q: more than %d tools", u.name, maxListed)
		}
	}
	return out, nil
}

func (g *Gateway) listTools(ctx context.Context, c Caller, r sdk.Request) (*sdk.ListToolsResult, error) {
	a, err := g.agent(ctx, c)
	if err != nil {
		return nil, err
	}
	type offered struct {
		name string
		tool *sdk.Tool
	}
	var all []offered
	var names []string
	for _, u := range g.ups {
		tools, err := g.upstreamTools(ctx, u, false)
		if err != nil {
			g.log.Warn("upstream tools unavailable", slog.String("upstream", u.name), slog.Any("error", err))
			continue
		}
		for _, t := range tools {
			name := g.qualify(u, t.Name)
			if reserved(name) {
				continue
			}
			all = append(all, offered{name, t})
			names = append(names, name)
		}
	}
	// The policy narrows the list in the guard, which records what it hid.
	visible, err := g.o.Guard.VisibleTools(ctx, guard.Listing{Source: "mcp", RequestID: requestID(r), Agent: a, Tools: names})
	if err != nil {
		return nil, fmt.Errorf("mcp: tool list unavailable: %w", err)
	}
	shown := make(map[string]bool, len(visible))
	for _, n := range visible {
		shown[n] = true
	}
	res := &sdk.ListToolsResult{Tools: []*sdk.Tool{}}
	for _, o := range all {
		if !shown[o.name] || !g.definitionOK(ctx, a, o.name, o.tool) {
			continue
		}
		c := *o.tool
		c.Name = o.name
		res.Tools = append(res.Tools, &c)
	}
	return res, nil
}

// definitionOK scans and pins one tool definition; false hides and blocks the tool.
func (g *Gateway) definitionOK(ctx context.Context, agent *identity.Agent, name string, t *sdk.Tool) bool {
	ok := g.checkDefinition(ctx, agent, name, t)
	g.mu.Lock()
	g.defOK[name] = ok
	g.mu.Unlock()
	return ok
}

func (g *Gateway) checkDefinition(ctx context.Context, agent *identity.Agent, name string, t *sdk.Tool) bool {
	def, hash, err := Definition(t)
	if err != nil {
		g.log.Warn("tool definition unreadable", slog.String("tool", name), slog.Any("error", err))
		return false
	}
	if rd := g.o.Guard.CheckDefinition(ctx, guard.Definition{Source: "mcp", Tool: name, Data: def}); rd.Action != guard.ResultPass {
		g.mu.Lock()
		seen := g.scanned[hash]
		g.scanned[hash] = true
		g.mu.Unlock()
		if !seen {
			reason := "tool_definition_suspicious"
			if rd.Err != nil {
				reason += ": " + rd.Err.Error()
			}
			g.record(ctx, Caller{Agent: agent}, name, guard.EventDeny, reason, "definition sha256:"+hash, rd)
		}
		return false
	}
	if g.o.Pins == nil {
		return true
	}
	st, err := g.o.Pins.Check(name, hash)
	if err != nil {
		g.log.Error("tool pin store", slog.String("tool", name), slog.Any("error", err))
		return false
	}
	switch st {
	case PinNew:
		g.record(ctx, Caller{Agent: agent}, name, guard.EventLog, "tool_pinned", "definition sha256:"+hash, nil)
	case PinChanged:
		g.record(ctx, Caller{Agent: agent}, name, guard.EventDeny, "tool_definition_changed", "definition sha256:"+hash, nil)
	case PinApproved:
		g.record(ctx, Caller{Agent: agent}, name, guard.EventLog, "tool_pin_approved", "definition sha256:"+hash, nil)
	}
	return st == PinNew || st == PinSame || st == PinApproved
}

// record writes, through the guard, a decision the gateway made on its own knowledge (a blocked
// definition, an unroutable server request), naming the agent of c when known (the guard
// bounds the tool name and writes on its own bounded context). scanned, when set, is the
// definition scan whose findings the record carries.
func (g *Gateway) record(ctx context.Context, c Caller, tool, decision, reason, msg string, scanned *guard.ResultDecision) {
	e := guard.Event{Source: "mcp", Agent: c.Agent, Tool: tool, Decision: decision, Reason: reason, Message: msg}
	if scanned != nil {
		e.Level, e.Findings = scanned.Level, scanned.Findings
	}
	if err := g.o.Guard.RecordEvent(ctx, e); err != nil {
		g.log.Error("record gateway event", slog.String("tool", guard.RecordedToolName(tool)), slog.String("reason", reason), slog.Any("error", err))
	}
}

// errorResult is a tool result the agent reads as a failure.
func errorResult(msg string) *sdk.CallToolResult {
	return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: msg}}}
}

// decide runs guard.Check, which holds a CONSTRAIN up to ApprovalWait for a human. It returns
// the decision, and the result to answer with when the call may not run.
func (g *Gateway) decide(ctx context.Context, req guard.Request) (*guard.Decision, *sdk.CallToolResult) {
	req.Hold = g.o.ApprovalWait
	d := g.o.Guard.Check(ctx, req)
	switch {
	case d.Allowed():
		return d, nil
	case d.Pending():
		return d, errorResult(pendingMessage(d.ApprovalID))
	case d.ApprovalID != "" && d.Code == "":
		// A retry whose approval is final (already used, denied or expired: the guard denies
		// with the approval ID and no failure code). Saying so tells the agent nothing of the
		// policy — the approval is its own — and ends a retry loop.
		return d, errorResult(finalApprovalMessage(d.ApprovalID))
	default:
		return d, errorResult(msgUnavailable)
	}
}

func finalApprovalMessage(id string) string {
	return fmt.Sprintf("the approval %s cannot be used: it was already used, denied or has expired. Call without %q to ask for a new approval.", id, ApprovalArg)
}

// metaApproval reads a retry's approval ID from _meta (resources/read and prompts/get have no
// arguments object to carry it).
func metaApproval(m sdk.Meta) string {
	id, _ := m[ApprovalArg].(string)
	return id
}

func pendingMessage(id string) string {
	return fmt.Sprintf("the call is waiting for human approval (approval ID %s). Once it is approved, call the tool again with the same arguments plus %q: %q.", id, ApprovalArg, id)
}

func requestID(req sdk.Request) string {
	if s := req.GetSession(); s != nil {
		return s.ID()
	}
	return ""
}

func (g *Gateway) callTool(ctx context.Context, c Caller, r *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
	if r.Params == nil {
		return nil, errors.New("mcp: tools/call without params")
	}
	// The arguments are read once, by the guard: strictly (arguments two readers could read two
	// ways — a repeated key, exactly or up to case; invalid UTF-8 — are refused, since they are
	// forwarded byte for byte and the server might run on the reading the policy did not see),
	// with the approval argument of a retry taken out. Absent and null arguments are {}.
	args := r.Params.Arguments
	if t := bytes.TrimSpace(args); len(t) == 0 || string(t) == "null" {
		args = json.RawMessage("{}")
	}
	name := r.Params.Name
	u, tool, known := g.split(name)

	// Definitions first: a tool whose definition changed or looks poisoned is blocked whatever
	// the policy says, and the call is not even decided. A name that is not a valid tool name
	// goes straight to guard.Check, which refuses it and records it cut — never whole.
	if known && guard.ValidToolName(name) == nil && !g.usable(ctx, c.Agent, u, name) {
		g.record(ctx, c, name, guard.EventDeny, "tool_blocked: definition changed or suspicious; call refused until re-approved", "definition sha256:", nil)
		return errorResult(msgUnavailable), nil
	}
	d, answer := g.decide(ctx, guard.Request{RequestID: requestID(r), Source: "mcp", Credentials: c.Credentials, Agent: c.Agent, UserToken: c.UserToken,
		Tool: name, Params: args, ApprovalID: metaApproval(r.Params.Meta), ApprovalArg: ApprovalArg, Session: sessionOf(r)})
	if answer != nil {
		if d.Code == guard.CodeDuplicateKey || d.Code == guard.CodeMalformed {
			// Refused and recorded by the guard; the agent gets invalid params.
			msg := "invalid arguments"
			if d.Err != nil {
				msg += ": " + strings.TrimPrefix(d.Err.Error(), "decode params: ")
			}
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: msg}
		}
		return answer, nil
	}
	args = d.Params
	if !known {
		g.outcome(ctx, d, name, false, "unknown tool", nil)
		return errorResult(msgUnavailable), nil
	}
	cctx, cancel := context.WithTimeout(ctx, g.o.CallTimeout)
	defer cancel()
	start := time.Now()
	var res *sdk.CallToolResult
	cs, err := g.session(ctx, u)
	if err == nil {
		p := &sdk.CallToolParams{Name: tool, Arguments: args}
		if tok := r.Params.GetProgressToken(); tok != nil && r.Session != nil {
			// A token of the gateway's own: agents' tokens may collide on the shared upstream.
			id := fmt.Sprintf("portcullis-%d", g.progressSeq.Add(1))
			g.progress.Store(id, progressSink{ctx: ctx, session: r.Session, token: tok})
			defer g.progress.Delete(id)
			p.SetProgressToken(id)
		}
		defer g.track(ctx, r.Session, u.name)()
		res, err = cs.CallTool(cctx, p)
	}
	dur := time.Since(start)
	if err != nil {
		g.log.Warn("upstream call failed", slog.String("tool", name), slog.Any("error", err))
		g.outcomeDur(ctx, d, name, true, false, err.Error(), nil, dur)
		return errorResult(msgFailed), nil
	}
	inspected, blobs := stripBlobs(res)
	raw, err := json.Marshal(inspected)
	if err != nil {
		g.outcomeDur(ctx, d, name, true, false, "unencodable result", nil, dur)
		return errorResult(msgWithheld), nil
	}
	rd := g.outcomeDur(ctx, d, name, true, !res.IsError, "", raw, dur)
	switch rd.Action {
	case guard.ResultPass:
		g.noteLinks(u, res)
		return res, nil
	case guard.ResultRedact:
		var out sdk.CallToolResult
		if err := json.Unmarshal(rd.Result, &out); err != nil || !restoreBlobs(&out, blobs) {
			return errorResult(msgWithheld), nil
		}
		// The [REDACTED:kind] markers show where; the count tells a client that reads _meta
		// without scanning the text that the result is not what the server sent.
		if out.Meta == nil {
			out.Meta = sdk.Meta{}
		}
		out.Meta[metaRedacted] = rd.Redacted
		return &out, nil
	default:
		return errorResult(withheldMessage(rd)), nil
	}
}

// metaRedacted is the _meta key of a redacted result: how many values or spans were replaced.
const metaRedacted = "portcullis/redacted"

// withheldMessage is what the agent is told of a withheld result: only that it was withheld —
// nothing of what inspection found — unless it was withheld for its size, which says nothing of
// its content and tells the operator which setting to raise.
func withheldMessage(rd *guard.ResultDecision) string {
	if rd.Code == guard.CodeResultTooLarge && rd.Err != nil {
		return msgWithheld + ": " + rd.Err.Error() + " (limits.max_outcome_result_bytes)"
	}
	return msgWithheld
}

func (g *Gateway) outcome(ctx context.Context, d *guard.Decision, tool string, ran bool, errMsg string, result json.RawMessage) *guard.ResultDecision {
	return g.outcomeDur(ctx, d, tool, ran, false, errMsg, result, 0)
}

func (g *Gateway) outcomeDur(ctx context.Context, d *guard.Decision, tool string, ran, ok bool, errMsg string, result json.RawMessage, dur time.Duration) *guard.ResultDecision {
	return g.outcomeWith(ctx, d, tool, ran, ok, errMsg, result, dur, false)
}

// outcomeWith reports the outcome of d's call; unredacted forwards its result whole or not at
// all (guard.Outcome.Unredacted).
func (g *Gateway) outcomeWith(ctx context.Context, d *guard.Decision, tool string, ran, ok bool, errMsg string, result json.RawMessage, dur time.Duration, unredacted bool) *guard.ResultDecision {
	return g.o.Guard.CheckResult(context.WithoutCancel(ctx), guard.Outcome{DecisionID: d.ID, Token: d.OutcomeToken, Source: "mcp", Agent: d.Agent, Tool: tool,
		Ran: ran, Success: ok, Error: errMsg, DurationMS: dur.Milliseconds(), Result: result, Unredacted: unredacted})
}

// maxListed bounds what one upstream may contribute to one listing.
const maxListed = 10_000

// eachListed hands f at most maxListed items of one upstream's listing; a listing that fails is
// logged and ends there.
func eachListed[T any](g *Gateway, u *upstream, seq iter.Seq2[T, error], f func(T)) {
	n := 0
	for item, err := range seq {
		if err != nil {
			g.log.Warn("upstream listing unavailable", slog.String("upstream", u.name), slog.Any("error", err))
			return
		}
		if n++; n > maxListed {
			return
		}
		f(item)
	}
}

// listed is one item an upstream offered in a listing.
type listed[T any] struct {
	u    *upstream
	item T
}

// collect runs one listing over every upstream that has the capability and keeps, for the
// agent, the items a call of the reserved tool could be allowed on: params gives what a call
// of an item would carry ({"server", "uri"} for a resource), judged by the policy
// (guard.Listing.Params); a narrowed listing is recorded. Each upstream contributes at most
// maxListed items; one that fails is logged and skipped.
func collect[T any](ctx context.Context, g *Gateway, c Caller, r sdk.Request, reserved string, has func(*upstream) bool,
	list func(*sdk.ClientSession) iter.Seq2[T, error], params func(*upstream, T) map[string]any) ([]listed[T], error) {
	a, err := g.agent(ctx, c)
	if err != nil {
		return nil, err
	}
	var all []listed[T]
	for _, u := range g.ups {
		if !has(u) {
			continue
		}
		cs, err := g.sessionNow(ctx, u)
		if err != nil {
			continue
		}
		eachListed(g, u, list(cs), func(item T) { all = append(all, listed[T]{u, item}) })
	}
	if len(all) == 0 {
		return nil, nil
	}
	l := guard.Listing{Source: "mcp", RequestID: requestID(r), Agent: a, Tools: make([]string, len(all)), Params: make([]map[string]any, len(all)), Labels: make([]string, len(all))}
	for i, it := range all {
		p := params(it.u, it.item)
		l.Tools[i], l.Params[i] = reserved, p
		// "server uri" or "server name": equal labels have equal parameters, so equal visibility.
		what, _ := p["uri"].(string)
		if what == "" {
			what, _ = p["name"].(string)
		}
		l.Labels[i] = it.u.name + " " + what
	}
	visible, err := g.o.Guard.VisibleTools(ctx, l)
	if err != nil {
		return nil, fmt.Errorf("mcp: listing unavailable: %w", err)
	}
	shown := make(map[string]bool, len(visible))
	for _, v := range visible {
		shown[v] = true
	}
	out := all[:0]
	for i, it := range all {
		if shown[l.Labels[i]] {
			out = append(out, it)
		}
	}
	return out, nil
}

// listResources merges the upstreams' resources the agent's policy could let it read
// (mcp.resources.read with {"server", "uri"}).
func (g *Gateway) listResources(ctx context.Context, c Caller, r sdk.Request) (*sdk.ListResourcesResult, error) {
	items, err := collect(ctx, g, c, r, ToolResourcesRead, hasResources,
		func(cs *sdk.ClientSession) iter.Seq2[*sdk.Resource, error] { return cs.Resources(ctx, nil) },
		func(u *upstream, r *sdk.Resource) map[string]any {
			return map[string]any{"server": u.name, "uri": r.URI}
		})
	if err != nil {
		return nil, err
	}
	res := &sdk.ListResourcesResult{Resources: []*sdk.Resource{}}
	for _, it := range items {
		res.Resources = append(res.Resources, it.item)
	}
	return res, nil
}

// listResourceTemplates merges the templates the policy could let the agent read through
// (mcp.resources.read with {"server", "uri": TEMPLATE}).
func (g *Gateway) listResourceTemplates(ctx context.Context, c Caller, r sdk.Request) (*sdk.ListResourceTemplatesResult, error) {
	items, err := collect(ctx, g, c, r, ToolResourcesRead, hasResources,
		func(cs *sdk.ClientSession) iter.Seq2[*sdk.ResourceTemplate, error] {
			return cs.ResourceTemplates(ctx, nil)
		},
		func(u *upstream, r *sdk.ResourceTemplate) map[string]any {
			return map[string]any{"server": u.name, "uri": r.URITemplate}
		})
	if err != nil {
		return nil, err
	}
	res := &sdk.ListResourceTemplatesResult{ResourceTemplates: []*sdk.ResourceTemplate{}}
	for _, it := range items {
		res.ResourceTemplates = append(res.ResourceTemplates, it.item)
	}
	return res, nil
}

func hasResources(u *upstream) bool {
	ir := u.initResult()
	return ir != nil && ir.Capabilities != nil && ir.Capabilities.Resources != nil
}

func hasPrompts(u *upstream) bool {
	ir := u.initResult()
	return ir != nil && ir.Capabilities != nil && ir.Capabilities.Prompts != nil
}

// governed decides one request that is not a tools/call under a reserved tool name and params,
// and runs call on u (nil: unknown — decided, recorded, never forwarded) only when the decision
// allows it. The result goes through guard.CheckResult like a tool's result.
func governed[T any](ctx context.Context, g *Gateway, c Caller, r sdk.Request, tool string, params any, approvalID string,
	u *upstream, kind, id string, call func(context.Context, *sdk.ClientSession) (T, error)) (T, error) {
	var zero T
	raw, err := json.Marshal(params)
	if err != nil {
		return zero, fmt.Errorf("mcp: encode params: %w", err)
	}
	d, answer := g.decide(ctx, guard.Request{RequestID: requestID(r), Source: "mcp", Credentials: c.Credentials, Agent: c.Agent, UserToken: c.UserToken, Tool: tool, Params: raw,
		ApprovalID: approvalID, Session: sessionOf(r)})
	if answer != nil {
		msg := answer.Content[0].(*sdk.TextContent).Text
		if msg == msgUnavailable {
			msg = "the " + kind + " is unavailable"
		}
		return zero, &jsonrpc.Error{Code: CodeRefused, Message: msg}
	}
	if u == nil {
		g.outcome(ctx, d, tool, false, "unknown "+kind, nil)
		return zero, &jsonrpc.Error{Code: CodeNotFound, Message: fmt.Sprintf("%v for %s %q", ErrNoUpstream, kind, id)}
	}
	ss, _ := r.GetSession().(*sdk.ServerSession)
	defer g.track(ctx, ss, u.name)()
	return forward(ctx, g, d, tool, func(ctx context.Context) (T, error) {
		cs, err := g.session(ctx, u)
		if err != nil {
			return zero, err
		}
		return call(ctx, cs)
	})
}

// forward runs an allowed request (bounded by CallTimeout) and passes its result through
// guard.CheckResult under the decision's ID and the gateway's result policy: withheld or
// redacted like a tool's result.
func forward[T any](ctx context.Context, g *Gateway, d *guard.Decision, tool string, call func(context.Context) (T, error)) (T, error) {
	return forwardWith(ctx, g, d, tool, false, call)
}

// forwardWith is forward; unredacted forwards the result whole or not at all.
func forwardWith[T any](ctx context.Context, g *Gateway, d *guard.Decision, tool string, unredacted bool, call func(context.Context) (T, error)) (T, error) {
	var zero T
	cctx, cancel := context.WithTimeout(ctx, g.o.CallTimeout)
	defer cancel()
	start := time.Now()
	res, err := call(cctx)
	dur := time.Since(start)
	if err != nil {
		g.outcomeWith(ctx, d, tool, true, false, err.Error(), nil, dur, unredacted)
		return zero, errors.New("mcp: " + msgFailed)
	}
	inspected, blobs := stripBlobs(res)
	raw, err := json.Marshal(inspected)
	if err != nil {
		g.outcomeWith(ctx, d, tool, true, false, "unencodable result", nil, dur, unredacted)
		return zero, errors.New("mcp: " + msgWithheld)
	}
	rd := g.outcomeWith(ctx, d, tool, true, true, "", raw, dur, unredacted)
	switch rd.Action {
	case guard.ResultPass:
		return res, nil
	case guard.ResultRedact:
		var out T
		if err := json.Unmarshal(rd.Result, &out); err == nil && restoreBlobs(any(out), blobs) {
			if m, ok := any(out).(interface {
				GetMeta() map[string]any
				SetMeta(map[string]any)
			}); ok {
				meta := m.GetMeta()
				if meta == nil {
					meta = map[string]any{}
				}
				meta[metaRedacted] = rd.Redacted
				m.SetMeta(meta)
			}
			return out, nil
		}
	}
	return zero, errors.New("mcp: " + withheldMessage(rd))
}

// readResource is decided as the reserved tool mcp.resources.read with params {server, uri}.
func (g *Gateway) readResource(ctx context.Context, c Caller, r *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
	if r.Params == nil || r.Params.URI == "" {
		return nil, errors.New("mcp: resources/read without a uri")
	}
	uri := r.Params.URI
	u, server, err := g.resourceFor(ctx, uri, false, r.Params.Meta)
	if err != nil {
		return nil, err
	}
	return governed(ctx, g, c, r, ToolResourcesRead, map[string]string{"server": server, "uri": uri}, metaApproval(r.Params.Meta), u, "resource", uri,
		func(ctx context.Context, cs *sdk.ClientSession) (*sdk.ReadResourceResult, error) {
			return cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: uri})
		})
}

// subscribe is decided as reading the resource, with params {server, uri, subscribe: true}: an
// agent that may read a resource may learn that it changed (the update carries only its URI).
func (g *Gateway) subscribe(ctx context.Context, c Caller, r *sdk.SubscribeRequest) error {
	if r.Params == nil || r.Params.URI == "" {
		return errors.New("mcp: resources/subscribe without a uri")
	}
	uri := r.Params.URI
	u, server, err := g.resourceFor(ctx, uri, false, r.Params.Meta)
	if err != nil {
		return err
	}
	_, err = governed(ctx, g, c, r, ToolResourcesRead, map[string]any{"server": server, "uri": uri, "subscribe": true}, metaApproval(r.Params.Meta), u, "resource", uri,
		func(ctx context.Context, cs *sdk.ClientSession) (struct{}, error) {
			if err := cs.Subscribe(ctx, &sdk.SubscribeParams{URI: uri}); err != nil {
				return struct{}{}, err
			}
			u.mu.Lock()
			defer u.mu.Unlock()
			if u.subs == nil {
				u.subs = map[string]bool{}
			}
			if !u.subs[uri] && len(u.subs) >= maxSubscriptions {
				return struct{}{}, fmt.Errorf("more than %d subscriptions on upstream %q", maxSubscriptions, u.name)
			}
			u.subs[uri] = true
			return struct{}{}, nil
		})
	return err
}

// complete is decided as what it completes: a prompt's argument as mcp.prompts.get with params
// {server, name, arguments, complete: ARG}, a resource template's as mcp.resources.read with
// {server, uri: TEMPLATE, arguments, complete: ARG}; arguments hold the context's resolved
// arguments and the partial value. The suggestions come back through the result inspection.
func (g *Gateway) complete(ctx context.Context, c Caller, r *sdk.CompleteRequest) (*sdk.CompleteResult, error) {
	if r.Params == nil || r.Params.Ref == nil {
		return nil, errors.New("mcp: completion/complete without a ref")
	}
	fwd := &sdk.CompleteParams{Argument: r.Params.Argument, Context: r.Params.Context, Ref: &sdk.CompleteReference{Type: r.Params.Ref.Type}}
	args := map[string]string{}
	if r.Params.Context != nil {
		maps.Copy(args, r.Params.Context.Arguments)
	}
	args[r.Params.Argument.Name] = r.Params.Argument.Value
	var (
		u            *upstream
		tool, server string
		params       = map[string]any{"arguments": args, "complete": r.Params.Argument.Name}
	)
	switch r.Params.Ref.Type {
	case "ref/prompt":
		up, name, known := g.split(r.Params.Ref.Name)
		if known {
			u, server = up, up.name
		}
		tool, fwd.Ref.Name, params["name"] = ToolPromptsGet, name, name
	case "ref/resource":
		var err error
		if u, server, err = g.resourceFor(ctx, r.Params.Ref.URI, true, r.Params.Meta); err != nil {
			return nil, err
		}
		tool, fwd.Ref.URI, params["uri"] = ToolResourcesRead, r.Params.Ref.URI, r.Params.Ref.URI
	default:
		return nil, fmt.Errorf("mcp: completion/complete: unknown ref type %q", r.Params.Ref.Type)
	}
	params["server"] = server
	return governed(ctx, g, c, r, tool, params, metaApproval(r.Params.Meta), u, "completion reference", r.Params.Ref.Name+r.Params.Ref.URI,
		func(ctx context.Context, cs *sdk.ClientSession) (*sdk.CompleteResult, error) {
			return cs.Complete(ctx, fwd)
		})
}

// listPrompts merges the prompts (namespaced) the policy could let the agent get
// (mcp.prompts.get with {"server", "name"}).
func (g *Gateway) listPrompts(ctx context.Context, c Caller, r sdk.Request) (*sdk.ListPromptsResult, error) {
	items, err := collect(ctx, g, c, r, ToolPromptsGet, hasPrompts,
		func(cs *sdk.ClientSession) iter.Seq2[*sdk.Prompt, error] { return cs.Prompts(ctx, nil) },
		func(u *upstream, p *sdk.Prompt) map[string]any {
			return map[string]any{"server": u.name, "name": p.Name}
		})
	if err != nil {
		return nil, err
	}
	res := &sdk.ListPromptsResult{Prompts: []*sdk.Prompt{}}
	for _, it := range items {
		q := *it.item
		q.Name = g.qualify(it.u, it.item.Name)
		res.Prompts = append(res.Prompts, &q)
	}
	return res, nil
}

// getPrompt is decided as the reserved tool mcp.prompts.get with params {server, name, arguments}.
func (g *Gateway) getPrompt(ctx context.Context, c Caller, r *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
	if r.Params == nil || r.Params.Name == "" {
		return nil, errors.New("mcp: prompts/get without a name")
	}
	u, name, known := g.split(r.Params.Name)
	server := ""
	if known {
		server = u.name
	}
	args := r.Params.Arguments
	if args == nil {
		args = map[string]string{}
	}
	return governed(ctx, g, c, r, ToolPromptsGet, map[string]any{"server": server, "name": name, "arguments": args}, metaApproval(r.Params.Meta), u, "prompt", r.Params.Name,
		func(ctx context.Context, cs *sdk.ClientSession) (*sdk.GetPromptResult, error) {
			return cs.GetPrompt(ctx, &sdk.GetPromptParams{Name: name, Arguments: r.Params.Arguments})
		})
}
