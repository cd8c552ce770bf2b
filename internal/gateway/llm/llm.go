// Package llm is Portcullis's LLM gateway: an HTTP proxy that speaks the providers' own wire
// formats — OpenAI Chat Completions (/v1/chat/completions), OpenAI Responses (/v1/responses)
// and Anthropic Messages (/v1/messages), streamed (server-sent events) and not — so an agent
// needs only a new base URL to put every tool call its model proposes under policy.
//
// The package owns the wire formats: parsing requests and responses, filtering the tools
// offered to the model, inspecting the conversation going to the model, rewriting model
// responses whose tool calls are denied or held for approval, and keeping streams valid for
// the official SDKs while text flows through unbuffered. It owns no decision: every decision
// is asked of a Checker, a small interface declared here; Guarded implements it over the
// guard's port (guard.Port). Of the module it imports only guard, identity (the agent type)
// and jsonx — no engine (policy, inspect, ledger, approval) and no store
// (internal/archtest enforces it).
//
// Fail closed: a Checker error, malformed arguments from the model, a malformed or cut-off
// upstream response or an upstream timeout never lets a tool call through.
package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Format is one provider wire format the gateway speaks.
type Format string

// The wire formats, each served at its provider's path.
const (
	ChatCompletions Format = "chat_completions" // POST /v1/chat/completions (OpenAI and compatible servers)
	Responses       Format = "responses"        // POST /v1/responses (OpenAI)
	Messages        Format = "messages"         // POST /v1/messages (Anthropic)
)

// paths maps the path an agent's SDK calls to the format served there.
var paths = map[string]Format{
	"/v1/chat/completions": ChatCompletions,
	"/v1/responses":        Responses,
	"/v1/messages":         Messages,
}

// upstreamPath is what is appended to an upstream's base URL (which ends in /v1) per format.
var upstreamPath = map[Format]string{
	ChatCompletions: "/chat/completions",
	Responses:       "/responses",
	Messages:        "/messages",
}

// Caller is the authenticated agent on whose behalf a model call is made.
type Caller struct {
	AgentID string // the agent, as identity knows it
	UserID  string // the invoking user, when the credential names one
	// Session is the session the call belongs to: the one the agent named (Portcullis-Session),
	// or, when it named none, the one its conversation is placed in (conversation.go).
	Session string
	// Principal is the Checker's own record of who authenticated (opaque to the gateway): it lets
	// one exchange be authenticated once and decided many times.
	Principal any
}

// ToolCall is one tool call the model proposed, with its arguments parsed.
type ToolCall struct {
	Format      Format          // wire format the call arrived in
	ModelCallID string          // gateway-assigned ID of the model call; links the call, its tool calls and their results
	CallID      string          // the provider's ID of this tool call (tool_call id, call_id, tool_use id)
	Name        string          // tool name as offered to the model
	Arguments   json.RawMessage // a JSON object, compacted
}

// Content is one piece of conversation text going to the model.
type Content struct {
	Format      Format
	ModelCallID string
	Role        string // "system", "developer", "user", "tool" (a tool result) or "document" (an attached document or search result)
	ToolCallID  string // for Role "tool": the tool call this is the result of
	Text        string
	// New: the text comes after the model's latest turn in the conversation — a tool result
	// answering it is new in this model call, not history repeated from an earlier one.
	New bool
}

// Action is the decision on a tool call. The zero value denies.
type Action int

// Actions on a tool call.
const (
	Deny      Action = iota // remove the call; the agent is told the tool is unavailable
	Allow                   // pass the call through unchanged (ALLOW and LOG)
	Constrain               // remove the call; the agent is told it awaits approval ApprovalID
)

// Verdict is the decision on one tool call.
type Verdict struct {
	Action     Action
	DecisionID string // recorded decision, quoted in notices so a human can find it
	ApprovalID string // for Constrain: the pending approval the agent may retry after
	Message    string // short reason safe to show the agent (optional)
	// Malformed: the call was denied because its arguments cannot be read one way only (a
	// repeated key, exactly or up to case; invalid UTF-8). The notice says so.
	Malformed bool
}

// ContentAction is the decision on a piece of conversation content. The zero value blocks.
type ContentAction int

// Actions on content.
const (
	Block  ContentAction = iota // refuse the whole model call
	Pass                        // send the text unchanged
	Redact                      // send ContentVerdict.Text instead
)

// ContentVerdict is the decision on one piece of content.
type ContentVerdict struct {
	Action     ContentAction
	Text       string // replacement text for Redact
	DecisionID string
	Message    string // short reason safe to show the agent (optional)
}

// Checker is what the gateway needs from the decision pipeline. Every method may be called
// concurrently. Any error is treated as a refusal: the request is refused or the tool call
// removed; nothing is passed through because a Checker failed.
type Checker interface {
	// Authenticate maps the incoming request (its gateway credential) to a caller.
	// An error answers 401.
	Authenticate(r *http.Request) (Caller, error)
	// AllowedTools returns the subset of names the caller's policy could ever allow;
	// the other tools are not offered to the model.
	AllowedTools(ctx context.Context, c Caller, names []string) ([]string, error)
	// CheckToolCall decides one tool call the model proposed.
	CheckToolCall(ctx context.Context, c Caller, call ToolCall) (Verdict, error)
	// InspectContent decides one piece of conversation text going to the model.
	InspectContent(ctx context.Context, c Caller, content Content) (ContentVerdict, error)
}

// Upstream is one provider endpoint. Its key is held only here: the agent's own
// Authorization and x-api-key headers are never forwarded.
type Upstream struct {
	BaseURL string            // ends in /v1, e.g. https://api.openai.com/v1 or https://api.anthropic.com/v1
	APIKey  string            // injected as "Authorization: Bearer" (OpenAI formats) or "x-api-key" (Anthropic); empty sends none
	Headers map[string]string // extra fixed headers, e.g. OpenAI-Organization
}

// Config configures a Gateway. Zero fields take the defaults below.
type Config struct {
	Upstreams         map[Format]Upstream // which upstream serves each format; a format without one answers 404
	MaxRequestBytes   int64               // request body limit (default 32 MiB, what the providers take)
	MaxResponseBytes  int64               // non-streamed response body limit, and held tool-call arguments in streams (default 32 MiB)
	MaxEventBytes     int                 // one server-sent event line (default 8 MiB)
	Timeout           time.Duration       // whole non-streamed call; for streams, until the response headers (default 10 min)
	StreamIdleTimeout time.Duration       // longest silence between two stream events (default 5 min)
	Client            *http.Client        // transport to the upstreams (default: a clone of http.DefaultTransport, no client timeout); its redirect policy is replaced: redirects are never followed
	// KeepAlive is how long a stream to the agent may stay silent (a tool call held until its
	// arguments are complete, an upstream that thinks) before the gateway sends an SSE comment,
	// which every SDK ignores and every proxy counts as traffic (default 15 s).
	KeepAlive time.Duration
	// BlockedResult is what a tool result that inspection blocks does to the model call:
	// BlockedResultRefuse (the default) refuses the call with content_blocked; BlockedResultReplace
	// sends the model a notice in place of the result, so the conversation goes on.
	BlockedResult string
	// RememberRemoved bounds how many removed Responses calls are remembered (over all
	// responses), so that the next turn of a conversation continued with previous_response_id
	// gets the function_call_output the provider expects (default 20000; negative: none).
	RememberRemoved int
	// Observe, when set, is told the outcome of every model call: one per request.
	Observe func(Outcome)
}

// Outcome is what became of one model call, for metrics and logs.
type Outcome struct {
	Format      Format
	ModelCallID string
	AgentID     string
	Stream      bool
	// Code is "ok", or the error code the agent got (gateway_unauthenticated, content_blocked,
	// upstream_timeout, upstream_stream_incomplete, …), or "upstream_<status>" for a provider
	// error relayed as is, or "client_gone" when the agent hung up first.
	Code     string
	Status   int           // the HTTP status of the answer (200 for a stream that failed after it began)
	Upstream bool          // the upstream was asked
	Elapsed  time.Duration // from the request to the end of the answer
}

// The values of Config.BlockedResult.
const (
	BlockedResultRefuse  = "refuse"
	BlockedResultReplace = "replace"
)

// Defaults for Config.
const (
	DefaultMaxRequestBytes   = 32 << 20
	DefaultMaxResponseBytes  = 32 << 20
	DefaultMaxEventBytes     = 8 << 20
	DefaultTimeout           = 10 * time.Minute
	DefaultStreamIdleTimeout = 5 * time.Minute
	DefaultKeepAlive         = 15 * time.Second
	DefaultRememberRemoved   = 20000
)

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("llm gateway: invalid configuration")

// ErrAmbiguousCredentials is what a Checker's Authenticate wraps when the request carried more
// than one credential (two Authorization headers, say): the gateway answers 400, not 401, since
// no credential was judged — the request was refused for being ambiguous.
var ErrAmbiguousCredentials = errors.New("llm gateway: ambiguous credentials")

// Gateway is the http.Handler serving the three formats.
type Gateway struct {
	cfg       Config
	checker   Checker
	client    *http.Client
	upstreams map[Format]upstream
	removed   *removedCalls // Responses calls removed, by response ID (previous_response_id)
}

type upstream struct {
	base    string // base URL, without a trailing slash
	url     string // base URL + path for the format
	key     string
	headers map[string]string
}

var _ http.Handler = (*Gateway)(nil)

// New validates cfg and returns a Gateway that asks checker for every decision.
func New(cfg Config, checker Checker) (*Gateway, error) {
	if checker == nil {
		return nil, fmt.Errorf("%w: nil Checker", ErrConfig)
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.MaxEventBytes <= 0 {
		cfg.MaxEventBytes = DefaultMaxEventBytes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.StreamIdleTimeout <= 0 {
		cfg.StreamIdleTimeout = DefaultStreamIdleTimeout
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	switch cfg.BlockedResult {
	case "":
		cfg.BlockedResult = BlockedResultRefuse
	case BlockedResultRefuse, BlockedResultReplace:
	default:
		return nil, fmt.Errorf("%w: blocked_result: %q (want refuse or replace)", ErrConfig, cfg.BlockedResult)
	}
	if cfg.RememberRemoved == 0 {
		cfg.RememberRemoved = DefaultRememberRemoved
	}
	g := &Gateway{cfg: cfg, checker: checker, upstreams: map[Format]upstream{}, removed: newRemovedCalls(cfg.RememberRemoved, removedTTL)}
	if cfg.Client != nil {
		c := *cfg.Client // a copy: the caller's client keeps its own redirect policy
		g.client = &c
	} else {
		g.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	// A redirect is never followed: Go's client would resend the body — the whole conversation —
	// to wherever the Location points, and for a custom header such as Anthropic's X-Api-Key
	// even to another host, so a compromised or misconfigured upstream could collect the
	// provider key. The 3xx comes back as the response and is answered upstream_redirect.
	g.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for f, u := range cfg.Upstreams {
		p, ok := upstreamPath[f]
		if !ok {
			return nil, fmt.Errorf("%w: upstreams: unknown format %q (want chat_completions, responses or messages)", ErrConfig, f)
		}
		base, err := url.Parse(u.BaseURL)
		if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
			return nil, fmt.Errorf("%w: upstreams.%s.base_url: %q is not an http(s) URL", ErrConfig, f, u.BaseURL)
		}
		for k := range u.Headers {
			if isCredentialHeader(k) {
				return nil, fmt.Errorf("%w: upstreams.%s.headers: %q is set from api_key", ErrConfig, f, k)
			}
		}
		g.upstreams[f] = upstream{base: strings.TrimSuffix(u.BaseURL, "/"), url: strings.TrimSuffix(u.BaseURL, "/") + p, key: u.APIKey, headers: u.Headers}
	}
	return g, nil
}

func isCredentialHeader(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Authorization", "X-Api-Key", "Proxy-Authorization", "Cookie":
		return true
	}
	return false
}

// ServeHTTP routes a request to its format by path.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	f, ok := paths[r.URL.Path]
	if !ok {
		f = guessFormat(r)
	}
	mc := &modelCall{ctx: r.Context(), g: g, format: f, id: newID()}
	defer func() {
		if g.cfg.Observe != nil {
			g.cfg.Observe(Outcome{Format: f, ModelCallID: mc.id, AgentID: mc.caller.AgentID, Stream: mc.stream,
				Code: rec.code(mc), Status: rec.status, Upstream: mc.upstream, Elapsed: time.Since(start)})
		}
	}()
	switch {
	case !ok && r.Method == http.MethodGet && (r.URL.Path == "/v1/models" || strings.HasPrefix(r.URL.Path, "/v1/models/")):
		g.models(rec, r, mc)
	case !ok:
		writeError(rec, f, http.StatusNotFound, codeNotFound, "the gateway serves POST /v1/chat/completions, /v1/responses and /v1/messages, and GET /v1/models")
	case r.Method != http.MethodPost:
		rec.Header().Set("Allow", http.MethodPost)
		writeError(rec, f, http.StatusMethodNotAllowed, codeInvalidRequest, "use POST")
	default:
		up, ok := g.upstreams[f]
		if !ok {
			writeError(rec, f, http.StatusNotFound, codeNotFound, fmt.Sprintf("no upstream is configured for %s", f))
			return
		}
		g.serve(rec, r, mc, up)
	}
}

// guessFormat names the provider whose error format answers a path the gateway does not serve:
// Anthropic's SDKs send anthropic-version on every request and call paths under /v1/messages.
func guessFormat(r *http.Request) Format {
	if r.Header.Get("Anthropic-Version") != "" || strings.HasPrefix(r.URL.Path, "/v1/messages") {
		return Messages
	}
	return ChatCompletions
}

// recorder remembers the status of the answer, for Observe.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's Flush.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// code is the outcome code of the answer written.
func (r *recorder) code(mc *modelCall) string {
	switch {
	case mc.code != "":
		return mc.code
	case r.Header().Get("X-Portcullis-Error") != "":
		return r.Header().Get("X-Portcullis-Error")
	case r.status == 0:
		return "client_gone"
	case r.status >= 400:
		return "upstream_" + strconv.Itoa(r.status)
	}
	return "ok"
}
