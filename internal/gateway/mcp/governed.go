package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/guard"
)

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
	defer g.track(ctx, r, u)()
	return forward(ctx, g, d, tool, func(ctx context.Context) (T, error) {
		cs, err := g.session(ctx, u)
		if err != nil {
			return zero, err
		}
		return retryLost(ctx, g, u, cs, func(cs *sdk.ClientSession) (T, error) { return call(ctx, cs) })
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
