//lint:file-ignore SA1019 sampling is deprecated from protocol revision 2026-07-28 on; servers and agents on 2025-11-25 still use it.

package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/guard"
)

// Server-initiated requests: an upstream asking the agent's model (sampling/createMessage) or
// user (elicitation/create) for something. Only as configured (Options.Sampling,
// Options.Elicitation), only to the sole agent session, and only when the policy allows it.

// serverRequestHandlers sets the upstream client's sampling and elicitation handlers, only as
// configured: without one the client does not advertise the capability, so the upstream cannot
// even ask.
func (g *Gateway) serverRequestHandlers(o *sdk.ClientOptions, server string) {
	if g.o.Sampling {
		o.CreateMessageHandler = func(ctx context.Context, r *sdk.CreateMessageRequest) (*sdk.CreateMessageResult, error) {
			return g.sampling(ctx, server, r)
		}
	}
	if g.o.Elicitation {
		// Titled multi-selects (SEP-1330) in the shape the SDK's check takes: clientMiddleware.
		o.ElicitationHandler = func(ctx context.Context, r *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
			return g.elicitation(ctx, server, r)
		}
	}
}

// titledMultiSelect is client middleware that rewrites a SEP-1330 titled multi-select written
// with "type": "string" beside its anyOf items (as the conformance fixture writes it) into the
// canonical shape, items {"anyOf": [{"const", "title"}...]} — the same choices — before the
// SDK's schema check, which takes a typed items schema for an untitled enum and refuses it.
func titledMultiSelect(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		if r, ok := req.(*sdk.ElicitRequest); ok && r.Params != nil {
			r.Params.RequestedSchema = canonicalTitledEnums(r.Params.RequestedSchema)
		}
		return next(ctx, method, req)
	}
}

// canonicalTitledEnums returns schema with each array property whose items are
// {"type": "string", "anyOf": [...]} and no enum rewritten to items {"anyOf": [...]}.
// Anything else is returned as it is.
func canonicalTitledEnums(schema any) any {
	var m map[string]any
	switch s := schema.(type) {
	case map[string]any:
		m = s
	case json.RawMessage:
		if json.Unmarshal(s, &m) != nil {
			return schema
		}
	default:
		return schema
	}
	props, _ := m["properties"].(map[string]any)
	for _, p := range props {
		pm, _ := p.(map[string]any)
		if pm == nil || pm["type"] != "array" {
			continue
		}
		items, _ := pm["items"].(map[string]any)
		if items == nil || items["type"] != "string" || items["enum"] != nil {
			continue
		}
		if anyOf, ok := items["anyOf"].([]any); ok && len(anyOf) > 0 {
			delete(items, "type")
		}
	}
	return m
}

// noteCaller remembers who the agent session that sent req is, so that a server-initiated
// request can be decided as that agent. A request that carries no identity changes nothing.
func (g *Gateway) noteCaller(req sdk.Request, creds CredentialsFunc) {
	ss, ok := req.GetSession().(*sdk.ServerSession)
	if !ok || ss == nil {
		return
	}
	c := creds(req)
	if c.Agent == nil && c.Credentials.APIKey == "" && c.Credentials.BearerToken == "" {
		return
	}
	g.mu.Lock()
	_, seen := g.callers[ss]
	if seen {
		g.callers[ss] = c
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	// A new session: forget the ones that ended, so the map holds only live sessions.
	alive := map[*sdk.ServerSession]bool{}
	for _, s := range g.agentSessions() {
		alive[s] = true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for s := range g.callers {
		if !alive[s] {
			delete(g.callers, s)
		}
	}
	g.callers[ss] = c
}

// agentSessions lists every agent session attached to the gateway's servers.
func (g *Gateway) agentSessions() []*sdk.ServerSession {
	var out []*sdk.ServerSession
	for _, s := range g.agentServers() {
		for ss := range s.Sessions() {
			out = append(out, ss)
		}
	}
	return out
}

// inflight counts, per upstream, the agent sessions with a request forwarded to it and not yet
// answered: a server-initiated request from that upstream belongs to one of their calls.
type inflight struct {
	mu sync.Mutex
	by map[string]map[*sdk.ServerSession]int // upstream → session → requests in flight
}

// begin notes a request of ss in flight on upstream server; the returned func ends it.
func (f *inflight) begin(ss *sdk.ServerSession, server string) func() {
	f.mu.Lock()
	if f.by == nil {
		f.by = map[string]map[*sdk.ServerSession]int{}
	}
	if f.by[server] == nil {
		f.by[server] = map[*sdk.ServerSession]int{}
	}
	f.by[server][ss]++
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.by[server][ss]--; f.by[server][ss] <= 0 {
			delete(f.by[server], ss)
		}
		if len(f.by[server]) == 0 {
			delete(f.by, server)
		}
	}
}

// sessions are the agent sessions with a request in flight on server.
func (f *inflight) sessions(server string) []*sdk.ServerSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*sdk.ServerSession, 0, len(f.by[server]))
	for ss := range f.by[server] {
		out = append(out, ss)
	}
	return out
}

// errUnroutable: a server-initiated request has no single agent to go to.
var errUnroutable = errors.New("mcp: the request was refused: no single agent session to route it to")

// soleAgent is the agent session a server-initiated request from upstream server goes to: the
// one session with a request in flight on that upstream (the call the request belongs to), or,
// with none in flight, the only session attached — if it is known and offers the capability
// (has). Otherwise the request is refused: the upstream session is shared, and the request does
// not say which agent's call caused it. Idle sessions of the same or other agents (clients that
// exit without ending theirs) do not count while a call is in flight.
func (g *Gateway) soleAgent(server string, has func(*sdk.ClientCapabilities) bool) (*sdk.ServerSession, Caller, string) {
	live := g.calls.sessions(server)
	switch {
	case len(live) > 1:
		return nil, Caller{}, fmt.Sprintf("%d agent sessions have requests in flight on the upstream", len(live))
	case len(live) == 0:
		live = g.agentSessions()
		if len(live) != 1 {
			return nil, Caller{}, fmt.Sprintf("no request in flight on the upstream and %d agent sessions attached", len(live))
		}
	}
	ss := live[0]
	g.mu.Lock()
	c, ok := g.callers[ss]
	g.mu.Unlock()
	if !ok {
		return nil, Caller{}, "the agent session has not identified itself"
	}
	if ip := ss.InitializeParams(); ip == nil || ip.Capabilities == nil || !has(ip.Capabilities) {
		return nil, Caller{}, "the agent does not offer the capability"
	}
	return ss, c, ""
}

// relayed decides one server-initiated request from upstream server as tool, with the request's
// params plus {"server": NAME}, and sends it to the sole agent session only when allowed; the
// agent's answer goes through guard.CheckResult under the same decision ID. Refusals tell the
// upstream nothing of the policy.
func relayed[T any](ctx context.Context, g *Gateway, server, tool string, params any, has func(*sdk.ClientCapabilities) bool,
	call func(context.Context, *sdk.ServerSession) (T, error)) (T, error) {
	var zero T
	ss, c, why := g.soleAgent(server, has)
	if ss == nil {
		g.log.Warn("server request refused", slog.String("tool", tool), slog.String("upstream", server), slog.String("reason", why))
		g.record(ctx, Caller{}, tool, guard.EventDeny, "server_request_unroutable: "+why, "upstream "+server, nil)
		return zero, errUnroutable
	}
	raw, err := withServer(params, server)
	if err != nil {
		return zero, err
	}
	d, answer := g.decide(ctx, guard.Request{RequestID: ss.ID(), Source: "mcp", Credentials: c.Credentials, Agent: c.Agent, UserToken: c.UserToken,
		Tool: tool, Params: raw})
	if answer != nil {
		// Held and not approved in time, or denied: the upstream cannot retry with an approval
		// ID, and learns nothing of why.
		return zero, errors.New("mcp: " + msgRefused)
	}
	// An elicitation's answer is what the user typed into the upstream's own form, for that
	// upstream: an address the form asked for must reach it as typed. It is still inspected (an
	// answer at the block level is withheld) and redacted in the ledger like any result.
	unredacted := tool == ToolElicitationCreate
	return forwardWith(ctx, g, d, tool, unredacted, func(ctx context.Context) (T, error) { return call(ctx, ss) })
}

// withServer encodes params (a JSON object) with "server" set to the upstream's name.
func withServer(params any, server string) (json.RawMessage, error) {
	b, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("mcp: encode params: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("mcp: params: %w", err)
	}
	m["server"] = server
	return json.Marshal(m)
}

// sampling forwards an upstream's sampling/createMessage, decided as ToolSamplingCreateMessage.
func (g *Gateway) sampling(ctx context.Context, server string, r *sdk.CreateMessageRequest) (*sdk.CreateMessageResult, error) {
	if r.Params == nil {
		return nil, errors.New("mcp: sampling/createMessage without params")
	}
	p := *r.Params
	// The upstream's _meta (its progress token) means nothing to the agent. includeContext would
	// have the agent's client add context from its other servers, which must not flow to this
	// one: the gateway offers no sampling.context capability, and drops the hint if sent anyway.
	p.Meta, p.IncludeContext = nil, ""
	return relayed(ctx, g, server, ToolSamplingCreateMessage, &p,
		func(c *sdk.ClientCapabilities) bool { return c.Sampling != nil },
		func(ctx context.Context, ss *sdk.ServerSession) (*sdk.CreateMessageResult, error) {
			return ss.CreateMessage(ctx, &p)
		})
}

// elicitation forwards an upstream's elicitation/create in form mode, decided as
// ToolElicitationCreate. URL mode (send the user to a page the upstream names) is refused.
func (g *Gateway) elicitation(ctx context.Context, server string, r *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
	if r.Params == nil {
		return nil, errors.New("mcp: elicitation/create without params")
	}
	p := *r.Params
	if p.Mode != "" && p.Mode != "form" || p.URL != "" {
		return nil, errors.New("mcp: only form elicitation is forwarded")
	}
	p.Meta, p.Mode = nil, "form"
	return relayed(ctx, g, server, ToolElicitationCreate, &p,
		func(c *sdk.ClientCapabilities) bool { return c.Elicitation != nil },
		func(ctx context.Context, ss *sdk.ServerSession) (*sdk.ElicitResult, error) {
			return ss.Elicit(ctx, &p)
		})
}
