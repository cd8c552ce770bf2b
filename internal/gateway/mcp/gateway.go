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
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/guard"
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
	instrOK   map[string]bool    // upstream instructions scanned: whether they pass
	defOK     map[string]bool    // tool → its last seen definition passed scanning and pinning
	scannedUp map[*upstream]bool // upstreams whose tools were scanned in this process
	servers   []*sdk.Server      // agent-facing servers, told when upstream tools change
	closed    bool
	wg        sync.WaitGroup // rescans, session watchers and reconnections in flight
	done      chan struct{}  // closed by Close: stops reconnection attempts

	// held are the tools whose last seen definition waits for an operator's approval, as
	// seen: a call re-checks it, so an approved tool is callable before the next list.
	held map[string]*sdk.Tool
	// admitted are the held definitions operators approved, tool → hash, when there is no
	// pin store to keep them (Options.Pins nil).
	admitted map[string]string

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
	gw := &Gateway{o: o, byKey: map[string]*upstream{}, log: o.Logger, scanned: map[string]bool{}, instrOK: map[string]bool{},
		defOK: map[string]bool{}, held: map[string]*sdk.Tool{}, admitted: map[string]string{}, scannedUp: map[*upstream]bool{}, callers: map[*sdk.ServerSession]Caller{},
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
			ResourceListChangedHandler:  g.relayResourcesChanged,
			PromptListChangedHandler:    g.relayPromptsChanged,
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
		tasks := &taskTools{}
		var mk func() sdk.Transport
		if u.NewTransport != nil {
			mk = func() sdk.Transport { return taskTransport{next: u.NewTransport(), tt: tasks} }
		}
		cs, err := client.Connect(ctx, taskTransport{next: t, tt: tasks}, upstreamSession)
		if err != nil && (!o.StartDown || u.NewTransport == nil) {
			return nil, &UpstreamError{Name: u.Name, Err: err}
		}
		up := &upstream{name: u.Name, client: client, mk: mk, tasks: tasks}
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
