package mcp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/identity"
)

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
				caps.Resources = &sdk.ResourceCapabilities{ListChanged: true}
			}
			caps.Resources.Subscribe = true
			caps.Prompts, caps.Completions = &sdk.PromptCapabilities{ListChanged: true}, &sdk.CompletionCapabilities{}
			continue
		}
		if ir.Capabilities != nil {
			if ir.Capabilities.Resources != nil {
				if caps.Resources == nil {
					caps.Resources = &sdk.ResourceCapabilities{ListChanged: true}
				}
				caps.Resources.Subscribe = caps.Resources.Subscribe || ir.Capabilities.Resources.Subscribe
			}
			if ir.Capabilities.Prompts != nil {
				caps.Prompts = &sdk.PromptCapabilities{ListChanged: true}
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
		SubscribeHandler: func(ctx context.Context, r *sdk.SubscribeRequest) error {
			return g.subscribe(ctx, subscriber(ctx, creds, r), r)
		},
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
			case *sdk.SubscriptionsListenRequest:
				// 2026-07-28: the SDK subscribes each URI the listen names with a request of its
				// own making, which carries none of the HTTP request's headers; the listen's
				// caller goes with it in the context.
				return next(context.WithValue(ctx, listenCallerKey{}, creds(req)), method, req)
			case *sdk.ServerRequest[*sdk.InitializeParams]:
				res, err := next(ctx, method, req)
				if ir, ok := res.(*sdk.InitializeResult); ok && err == nil {
					ir.Instructions = g.instructions(ctx)
				}
				return res, err
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
	if caps.Resources != nil {
		addResourceSentinel(s)
	}
	if caps.Prompts != nil {
		addPromptSentinel(s)
	}
	g.mu.Lock()
	g.servers = append(g.servers, s)
	g.mu.Unlock()
	return s
}

// listenCallerKey carries the caller of a subscriptions/listen request to the subscriptions the
// SDK makes for it.
type listenCallerKey struct{}

// subscriber is who subscribes: the caller of the resources/subscribe request, or of the
// subscriptions/listen (2026-07-28) the SDK made this subscription for. The latter's requests
// carry no transport data (no HTTP headers), so creds would find no one and the subscription
// would be refused; the listen's caller was authenticated like any request's.
func subscriber(ctx context.Context, creds CredentialsFunc, r *sdk.SubscribeRequest) Caller {
	if r.GetExtra() == nil {
		if c, ok := ctx.Value(listenCallerKey{}).(Caller); ok {
			return c
		}
	}
	return creds(r)
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

// relaySentinel is a tool, a resource and a prompt registered on every agent-facing server only
// so that removing and re-adding one makes the SDK send the matching
// notifications/{tools,resources,prompts}/list_changed to the agents (debounced, and to
// new-protocol subscribers too). The agent never sees them: listings, calls, reads and gets are
// answered by the gateway. The resource and prompt sentinels exist only where the server offers
// resources or prompts (registering one would make the SDK offer the capability).
const (
	relaySentinel         = "portcullis.internal.list_changed"
	relayResourceSentinel = "portcullis-internal:list_changed"
)

func addSentinel(s *sdk.Server) {
	s.AddTool(&sdk.Tool{Name: relaySentinel, InputSchema: map[string]any{"type": "object"}},
		func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			return nil, errors.New("mcp: not a tool")
		})
}

func addResourceSentinel(s *sdk.Server) {
	s.AddResource(&sdk.Resource{URI: relayResourceSentinel, Name: relaySentinel},
		func(context.Context, *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
			return nil, errors.New("mcp: not a resource")
		})
}

func addPromptSentinel(s *sdk.Server) {
	s.AddPrompt(&sdk.Prompt{Name: relaySentinel},
		func(context.Context, *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
			return nil, errors.New("mcp: not a prompt")
		})
}

// relayListChanged tells every connected agent that the tool list changed.
func (g *Gateway) relayListChanged() {
	for _, s := range g.agentServers() {
		s.RemoveTools(relaySentinel)
		addSentinel(s)
	}
}

// relayResourcesChanged passes an upstream's notifications/resources/list_changed on to every
// connected agent (debounced by the SDK). Nothing is re-read first: the gateway keeps no
// resource listing of its own to refresh (a listing is merged and filtered per request, and
// the routing index is rebuilt when a URI is not found in it).
func (g *Gateway) relayResourcesChanged(context.Context, *sdk.ResourceListChangedRequest) {
	for _, s := range g.agentServers() {
		s.RemoveResources(relayResourceSentinel)
		addResourceSentinel(s)
	}
}

// relayPromptsChanged passes an upstream's notifications/prompts/list_changed on to every
// connected agent, like relayResourcesChanged.
func (g *Gateway) relayPromptsChanged(context.Context, *sdk.PromptListChangedRequest) {
	for _, s := range g.agentServers() {
		s.RemovePrompts(relaySentinel)
		addPromptSentinel(s)
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
