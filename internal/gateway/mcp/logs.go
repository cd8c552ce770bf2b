//lint:file-ignore SA1019 logging is deprecated from protocol revision 2026-07-28 on; servers and agents on 2025-11-25 still use it.

package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/guard"
)

// Upstream log messages (notifications/message), relayed as configured (Options.RelayLogs) to
// the one agent session a line can be attributed to, through the result inspection.
//
// An upstream session is shared by every agent session, and the go-sdk client hands a
// notification to its handler with the connection's context only: a Streamable HTTP upstream's
// per-request streams all feed one queue, and a stdio upstream has one stream to begin with. So a
// line cannot be tied to the call that caused it; it is relayed only where that does not matter,
// when every attached agent session is the same principal: exactly one session (the stdio
// wrapper; a single HTTP agent), or several of one agent acting for the same user (an agent that
// opened several, or left old ones open). No line then crosses from one agent or user to
// another. Among that principal's sessions it goes to the one that most recently sent the
// upstream a request. Anything else is dropped and counted (LogStats).

// ToolLoggingMessage names an upstream's log line to the inspection and in the ledger. It is no
// policy name: lines are not decided, they are inspected like results.
const ToolLoggingMessage = "mcp.logging.message"

// levelRank orders the MCP (syslog) levels; an unknown level is refused.
var levelRank = map[sdk.LoggingLevel]int{"debug": 0, "info": 1, "notice": 2, "warning": 3, "error": 4, "critical": 5, "alert": 6, "emergency": 7}

// LogStats counts upstream log lines by what happened to them.
type LogStats struct {
	Relayed      uint64 // reached an agent session (redacted ones included)
	Redacted     uint64 // relayed with secrets or PII replaced (and recorded)
	Withheld     uint64 // inspection blocked them (recorded)
	Unattributed uint64 // no agent session they could be attributed to: dropped
	Filtered     uint64 // below the level their agent session set (or it set none): dropped
	Undelivered  uint64 // the agent session could not be sent them
}

// ByOutcome is the counts by outcome name, as metrics label them.
func (s LogStats) ByOutcome() map[string]uint64 {
	return map[string]uint64{"relayed": s.Relayed, "redacted": s.Redacted, "withheld": s.Withheld,
		"unattributed": s.Unattributed, "filtered": s.Filtered, "undelivered": s.Undelivered}
}

// logRelay is the gateway's state for log relaying.
type logRelay struct {
	on bool
	// Under Gateway.mu: each agent session's level (logging/setLevel, or a 2026-07-28
	// request's), the level the upstreams are to be asked for (the lowest of those; "" = never
	// asked), and the level each upstream's session last confirmed (sendLevel). No lock is held
	// while an upstream is asked: one that hangs delays only the requests that need it.
	levels   map[*sdk.ServerSession]sdk.LoggingLevel
	upstream sdk.LoggingLevel
	sent     map[*upstream]sentLevel

	callsMu sync.Mutex
	calls   map[*pendingCall]struct{}
	last    map[string]*sdk.ServerSession // upstream → the session that last sent it a request
	seq     uint64

	relayed, redacted, withheld, unattributed, filtered, undelivered atomic.Uint64
}

func newLogRelay(on bool) logRelay {
	return logRelay{on: on, levels: map[*sdk.ServerSession]sdk.LoggingLevel{}, sent: map[*upstream]sentLevel{},
		calls: map[*pendingCall]struct{}{}, last: map[string]*sdk.ServerSession{}}
}

// sentLevel is the level an upstream's session (cs: a reconnected upstream's new session has
// none) confirmed it logs at.
type sentLevel struct {
	cs    *sdk.ClientSession
	level sdk.LoggingLevel
}

// pendingCall is a request forwarded to upstream server for agent session ss; ctx is the
// agent's request's context, which keeps a notification sent in it on that request's stream.
// A request of the 2026-07-28 revision carries its own log level (_meta, level; "" = none):
// such an agent has no session level and no stream but its requests'.
type pendingCall struct {
	ctx        context.Context
	ss         *sdk.ServerSession
	server     string
	seq        uint64 // orders the calls
	perRequest bool
	level      sdk.LoggingLevel
}

// protocol20260728 is the first MCP revision whose requests carry their protocol version and
// log level in _meta (SEP-2575), with no session state and no stream outside a request.
const protocol20260728 = "2026-07-28"

// requestLevel is the log level a 2026-07-28 request asks for in its _meta (none: ""), and
// whether the request is of that revision at all.
func requestLevel(r sdk.Request) (level sdk.LoggingLevel, perRequest bool) {
	p := r.GetParams()
	if p == nil {
		return "", false
	}
	meta := p.GetMeta()
	if v, _ := meta[sdk.MetaKeyProtocolVersion].(string); v < protocol20260728 {
		return "", false
	}
	l, _ := meta[sdk.MetaKeyLogLevel].(string)
	if _, ok := levelRank[sdk.LoggingLevel(l)]; !ok {
		return "", true
	}
	return sdk.LoggingLevel(l), true
}

// newProtocolSession reports whether ss speaks 2026-07-28 or later: a line for it can only
// travel on one of its requests' streams.
func newProtocolSession(ss *sdk.ServerSession) bool {
	ip := ss.InitializeParams()
	return ip != nil && ip.ProtocolVersion >= protocol20260728
}

// LogStats returns how many upstream log lines went where.
func (g *Gateway) LogStats() LogStats {
	return LogStats{Relayed: g.logs.relayed.Load(), Redacted: g.logs.redacted.Load(), Withheld: g.logs.withheld.Load(),
		Unattributed: g.logs.unattributed.Load(), Filtered: g.logs.filtered.Load(), Undelivered: g.logs.undelivered.Load()}
}

// logHandler sets the upstream client's log handler, only when relaying is on.
func (g *Gateway) logHandler(o *sdk.ClientOptions, server string) {
	if g.logs.on {
		o.LoggingMessageHandler = func(ctx context.Context, r *sdk.LoggingMessageRequest) { g.relayLog(ctx, server, r) }
	}
}

func hasLogging(u *upstream) bool {
	ir := u.initResult()
	return ir != nil && ir.Capabilities != nil && ir.Capabilities.Logging != nil
}

// offerLogging offers agents the logging capability when relaying is on and an upstream (whose
// capabilities are up) logs.
func (g *Gateway) offerLogging(caps *sdk.ServerCapabilities, up *sdk.ServerCapabilities) {
	if g.logs.on && up.Logging != nil {
		caps.Logging = &sdk.LoggingCapabilities{}
	}
}

// askLevelAgain asks a reconnected upstream's session (which starts with no level) for the level
// the agents want, if any asked, the way sendLevel asks (askLevel).
func (g *Gateway) askLevelAgain(ctx context.Context, u *upstream, cs *sdk.ClientSession) {
	ir := cs.InitializeResult()
	if lvl := g.upstreamLevel(); lvl != "" && ir != nil && ir.Capabilities != nil && ir.Capabilities.Logging != nil {
		g.askLevel(ctx, u, cs, lvl)
	}
}

// setLevelMiddleware answers logging/setLevel (setLevel) and passes every other request on.
func (g *Gateway) setLevelMiddleware(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		if r, ok := req.(*sdk.ServerRequest[*sdk.SetLoggingLevelParams]); ok {
			return g.setLevel(ctx, method, r, next)
		}
		return next(ctx, method, req)
	}
}

// track notes request r forwarded to upstream server, so a line the upstream logs meanwhile
// can be attributed to its agent session; the returned func forgets it. With server requests
// enabled it also notes that the session has a request in flight there (serverreq.go: whose
// call an upstream's sampling or elicitation request belongs to).
func (g *Gateway) track(ctx context.Context, r sdk.Request, u *upstream) func() {
	ss, _ := r.GetSession().(*sdk.ServerSession)
	if ss == nil {
		return func() {}
	}
	endLog := g.trackLog(ctx, r, ss, u)
	if !g.o.Sampling && !g.o.Elicitation {
		return endLog
	}
	endCall := g.calls.begin(ss, u.name)
	return func() { endCall(); endLog() }
}

func (g *Gateway) trackLog(ctx context.Context, r sdk.Request, ss *sdk.ServerSession, u *upstream) func() {
	if !g.logs.on {
		return func() {}
	}
	server := u.name
	c := &pendingCall{ctx: ctx, ss: ss, server: server}
	c.level, c.perRequest = requestLevel(r)
	if c.level != "" {
		g.wantLevel(ss, c.level)
	}
	// Before the request is forwarded, so that this upstream already logs at the level wanted
	// when it runs it: only this one (another upstream is asked before a request goes to it),
	// and with no lock held, so an upstream that hangs holds up only its own requests.
	if hasLogging(u) {
		g.sendLevel(ctx, u)
	}
	g.logs.callsMu.Lock()
	g.logs.seq++
	c.seq = g.logs.seq
	g.logs.calls[c] = struct{}{}
	g.logs.last[server] = ss
	g.logs.callsMu.Unlock()
	return func() {
		g.logs.callsMu.Lock()
		delete(g.logs.calls, c)
		g.logs.callsMu.Unlock()
	}
}

// setLevel answers an agent's logging/setLevel (the SDK keeps the session's level and filters
// what is sent to it) and, when relaying, remembers the level and asks every upstream that logs
// for the lowest level any attached session wants — before answering, so that lines of the
// agent's next call are not lost to an upstream still at its old level.
func (g *Gateway) setLevel(ctx context.Context, method string, r *sdk.ServerRequest[*sdk.SetLoggingLevelParams], next sdk.MethodHandler) (sdk.Result, error) {
	if r.Params == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "logging/setLevel without a level"}
	}
	if _, ok := levelRank[r.Params.Level]; !ok {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown log level %q", r.Params.Level)}
	}
	res, err := next(ctx, method, r)
	if err != nil || !g.logs.on || r.Session == nil {
		return res, err
	}
	if g.wantLevel(r.Session, r.Params.Level) {
		// A session's level covers lines outside its requests too: every upstream that logs
		// is asked now, one after the other, with no lock held.
		for _, u := range g.ups {
			if hasLogging(u) {
				g.sendLevel(ctx, u)
			}
		}
	}
	return res, nil
}

// maxLevelSends bounds how often sendLevel asks one upstream while the wanted level keeps
// changing under it.
const maxLevelSends = 3

// sendLevel asks upstream u for the level the agents want (logs.upstream) unless its session
// confirmed it already. No lock is held while u is asked. Concurrent senders may be answered
// out of order, so each, once answered, looks again and asks once more if what it sent is no
// longer what is wanted: the last one answered leaves u at the level wanted last.
func (g *Gateway) sendLevel(ctx context.Context, u *upstream) {
	for range maxLevelSends {
		g.mu.Lock()
		want, sent := g.logs.upstream, g.logs.sent[u]
		g.mu.Unlock()
		if want == "" {
			return // no agent asked for a level
		}
		cs, err := g.session(ctx, u)
		if err != nil {
			g.log.Warn("upstream log level not set", slog.String("upstream", u.name), slog.Any("error", err))
			return
		}
		if sent.cs == cs && sent.level == want {
			return
		}
		if !g.askLevel(ctx, u, cs, want) {
			return
		}
	}
}

// askLevel asks u's session cs for level want, bounded by the call timeout, and remembers the
// answer; it reports whether cs now logs at want. The one path for every ask (a request's, a
// reconnection's), so that a refusal is handled alike. A refusal is remembered like an answer:
// asked again before every request, an upstream that cannot follow (or hangs) would hold each of
// them up to the call timeout, and answer the same. It is asked again when the level wanted
// changes or it reconnects. An ask cut short because ctx ended (the agent's own request ended)
// got no answer at all: it is not remembered, and the next request asks again.
func (g *Gateway) askLevel(ctx context.Context, u *upstream, cs *sdk.ClientSession, want sdk.LoggingLevel) bool {
	cctx, cancel := context.WithTimeout(ctx, g.o.CallTimeout)
	err := cs.SetLoggingLevel(cctx, &sdk.SetLoggingLevelParams{Level: want})
	cancel()
	if err != nil && ctx.Err() != nil {
		return false
	}
	g.mu.Lock()
	g.logs.sent[u] = sentLevel{cs: cs, level: want}
	g.mu.Unlock()
	if err != nil {
		// The agent asked the gateway, which answers; an upstream that cannot follow only
		// logs less.
		g.log.Warn("upstream log level not set", slog.String("upstream", u.name), slog.String("level", string(want)), slog.Any("error", err))
		return false
	}
	return true
}

// wantLevel remembers the level agent session ss wants and reports whether the lowest level
// any attached session wants — the one upstreams are asked for — changed.
func (g *Gateway) wantLevel(ss *sdk.ServerSession, level sdk.LoggingLevel) bool {
	alive := map[*sdk.ServerSession]bool{}
	for _, s := range g.agentSessions() {
		alive[s] = true
	}
	g.mu.Lock()
	for s := range g.logs.levels {
		if !alive[s] {
			delete(g.logs.levels, s)
		}
	}
	g.logs.levels[ss] = level
	lowest := level
	for _, l := range g.logs.levels {
		if levelRank[l] < levelRank[lowest] {
			lowest = l
		}
	}
	changed := lowest != g.logs.upstream
	g.logs.upstream = lowest
	g.mu.Unlock()
	return changed
}

// upstreamLevel is the level the upstreams were asked for ("" when none was), for a
// reconnected upstream to be asked again.
func (g *Gateway) upstreamLevel() sdk.LoggingLevel {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.logs.upstream
}

// logTarget is the agent session a line from upstream server can be attributed to, who that
// session is, and its request in flight to that upstream (nil when none), whose context keeps
// the line on that request's stream; why says why there is no session.
func (g *Gateway) logTarget(server string) (ss *sdk.ServerSession, c Caller, call *pendingCall, why string) {
	live := g.agentSessions()
	if len(live) == 0 {
		return nil, Caller{}, nil, "no agent session attached"
	}
	callers := map[*sdk.ServerSession]Caller{}
	g.mu.Lock()
	for _, s := range live {
		c, ok := g.callers[s]
		if !ok {
			g.mu.Unlock()
			return nil, Caller{}, nil, "an agent session has not identified itself"
		}
		callers[s] = c
	}
	g.mu.Unlock()
	if len(live) > 1 {
		first := callers[live[0]]
		for _, c := range callers {
			if c.Agent == nil || first.Agent == nil || c.Agent.ID != first.Agent.ID || c.UserToken != first.UserToken {
				return nil, Caller{}, nil, fmt.Sprintf("%d agent sessions of more than one agent or user attached", len(live))
			}
		}
	}

	// One principal: the line goes to the session that most recently sent the upstream a
	// request — on that request's stream while it is in flight. The go-sdk client handles
	// notifications on a queue that the call's answer can overtake, so a line may well be
	// handled after its call returned.
	var latest *pendingCall
	g.logs.callsMu.Lock()
	for p := range g.logs.calls {
		if p.server == server && (latest == nil || p.seq > latest.seq) {
			latest = p
		}
	}
	last := g.logs.last[server]
	g.logs.callsMu.Unlock()
	if latest != nil {
		if c, ok := callers[latest.ss]; ok {
			return latest.ss, c, latest, ""
		}
	}
	if c, ok := callers[last]; ok {
		return last, c, nil, ""
	}
	if len(live) == 1 {
		return live[0], callers[live[0]], nil, ""
	}
	return nil, Caller{}, nil, fmt.Sprintf("none of the agent's %d sessions has called the upstream", len(live))
}

var errNoRequest = errors.New("mcp: no request in flight")

// logSendTimeout bounds sending one relayed line to an agent session; a line not sent in time
// is counted undelivered. A variable so that tests can shorten it.
var logSendTimeout = 5 * time.Second

// logLine is what of a log message is inspected and relayed: the upstream's _meta is not.
type logLine struct {
	Logger string `json:"logger,omitempty"`
	Data   any    `json:"data"`
}

// relayLog passes one upstream log line to the agent session it can be attributed to, if that
// session asked for its level, through CheckNotice: secrets and PII replaced, injected
// instructions withheld.
func (g *Gateway) relayLog(ctx context.Context, server string, r *sdk.LoggingMessageRequest) {
	p := r.Params
	if p == nil {
		return
	}
	ss, c, call, why := g.logTarget(server)
	if ss == nil {
		g.logs.unattributed.Add(1)
		g.log.Debug("upstream log line dropped", slog.String("upstream", server), slog.String("reason", why))
		return
	}
	var reqCtx context.Context
	if call != nil {
		reqCtx = call.ctx
	}
	g.mu.Lock()
	want, ok := g.logs.levels[ss]
	g.mu.Unlock()
	switch {
	case call != nil && call.perRequest:
		// 2026-07-28: the level the request asked for (none: nothing is sent, as the SDK does).
		want, ok = call.level, call.level != ""
	case newProtocolSession(ss):
		// A 2026-07-28 session has no stream outside its requests, and none is in flight to
		// this upstream (the line came after its call returned): nowhere to send it.
		g.logs.undelivered.Add(1)
		return
	}
	if rank, known := levelRank[p.Level]; !ok || !known || rank < levelRank[want] {
		// Below what the agent asked for (or an unknown level): the SDK would not send it
		// either, and it need not be inspected. The upstream logs this low for another session.
		g.logs.filtered.Add(1)
		return
	}
	raw, err := json.Marshal(logLine{Logger: p.Logger, Data: p.Data})
	if err != nil {
		g.logs.withheld.Add(1)
		return
	}
	msg := "upstream " + server
	rd := g.o.Guard.CheckNotice(ctx, guard.Notice{Source: "mcp", Agent: c.Agent, Credentials: c.Credentials, Tool: ToolLoggingMessage,
		RequestID: ss.ID(), Data: raw, Message: msg})
	var line logLine
	if rd.Action == guard.ResultRedact || rd.Action == guard.ResultPass {
		if err := json.Unmarshal(rd.Result, &line); err != nil {
			rd.Action = guard.ResultBlock
		}
	}
	if rd.Action == guard.ResultBlock {
		g.logs.withheld.Add(1)
		if rd.Err != nil {
			g.log.Warn("upstream log line withheld", slog.String("upstream", server), slog.Any("error", rd.Err))
		}
		return
	}
	// Which upstream logged is the agent's to know; the upstream's own logger name follows.
	if server != "" {
		if line.Logger == "" {
			line.Logger = server
		} else {
			line.Logger = server + Separator + line.Logger
		}
	}
	out := &sdk.LoggingMessageParams{Level: p.Level, Logger: line.Logger, Data: line.Data}
	// Bounded: an agent that stops reading must not hold the upstream's notification handler
	// (and with it every later line and answer of that upstream) for good.
	err = errNoRequest
	if reqCtx != nil {
		sctx, cancel := context.WithTimeout(reqCtx, logSendTimeout)
		err = ss.Log(sctx, out)
		cancel()
	}
	if err != nil {
		// No request in flight, or it answered meanwhile and its stream is closed: the
		// session's own stream.
		sctx, cancel := context.WithTimeout(context.Background(), logSendTimeout)
		err = ss.Log(sctx, out)
		cancel()
	}
	if err != nil {
		g.logs.undelivered.Add(1)
		g.log.Debug("upstream log line not delivered", slog.String("upstream", server), slog.Any("error", err))
		return
	}
	g.logs.relayed.Add(1)
	if rd.Action == guard.ResultRedact {
		g.logs.redacted.Add(1)
	}
}
