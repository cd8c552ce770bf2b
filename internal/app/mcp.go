package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/config"
	mcpgw "github.com/portcullis-ai/portcullis/internal/gateway/mcp"
	"github.com/portcullis-ai/portcullis/internal/gateway/mcp/stdioconn"
	"github.com/portcullis-ai/portcullis/internal/gateway/mcp/upauth"
	"github.com/portcullis-ai/portcullis/internal/identity"
)

// PinsFile holds the MCP tool definition pins in the data directory.
const PinsFile = "mcp-pins.json"

// mcpEventStoreBytes bounds the SSE events /mcp keeps for resumption, over all sessions.
const mcpEventStoreBytes = 32 << 20

// droppedBindingGrace is how long the messages of an /mcp request whose client hung up keep
// the agent authenticated for it: long enough for the SDK to start handling them.
const droppedBindingGrace = 10 * time.Second

// upstreamRetries bounds reconnections of a remote upstream's event streams.
const upstreamRetries = 2

// upstreamIdleConns is how many idle connections the gateway keeps to one remote upstream. Every
// call from every agent goes over the one upstream session, each as its own POST: with
// net/http's default of two idle connections per host, concurrent calls opened and closed a TCP
// connection each (thousands in TIME_WAIT, ~20% of the gateway's CPU per call at 64 clients;
// docs/benchmarks.md).
const upstreamIdleConns = 256

// upstreamHTTPClient is the client of one remote upstream, kept across its reconnections.
func upstreamHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = upstreamIdleConns
	t.MaxIdleConnsPerHost = upstreamIdleConns
	return &http.Client{Transport: t}
}

// MCPUpstreams turns configured upstreams into restartable transports. Stdio children inherit nothing of the
// environment but PATH and HOME plus what the configuration names, and write their logs to stderr.
// A remote upstream's credentials (headers, OAuth client credentials) are read here: a value
// that is not set fails, naming its setting.
func MCPUpstreams(ups []config.MCPUpstream, stderr *os.File, log *slog.Logger) ([]mcpgw.Upstream, error) {
	out := make([]mcpgw.Upstream, 0, len(ups))
	for i, u := range ups {
		up, err := MCPUpstream(i, u, stderr, log)
		if err != nil {
			return nil, err
		}
		out = append(out, up)
	}
	return out, nil
}

// MCPUpstream is MCPUpstreams for the one upstream at index i of mcp.upstreams (errors name
// its setting by that index).
func MCPUpstream(i int, u config.MCPUpstream, stderr *os.File, log *slog.Logger) (mcpgw.Upstream, error) {
	if u.URL != "" {
		url, hc := u.URL, upstreamHTTPClient()
		oauth, err := upstreamCredentials(fmt.Sprintf("mcp.upstreams[%d]", i), u, hc, log)
		if err != nil {
			return mcpgw.Upstream{}, err
		}
		return mcpgw.Upstream{Name: u.Name, NewTransport: func() sdk.Transport {
			// A few retries, not none: a server may close a call's event stream and finish
			// the call on a resumed one (SEP-1699); without a retry that drops the whole
			// upstream session. A server that is gone still fails within seconds.
			t := &sdk.StreamableClientTransport{Endpoint: url, HTTPClient: hc, MaxRetries: upstreamRetries}
			if oauth != nil {
				t.OAuthHandler = oauth
			}
			return t
		}}, nil
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range u.Env {
		env = append(env, k+"="+v)
	}
	command, args := u.Command, u.Args
	return mcpgw.Upstream{Name: u.Name, NewTransport: func() sdk.Transport {
		return UpstreamCommand(command, args, env, stderr)
	}}, nil
}

// upstreamCredentials puts u's configured headers on hc's requests to it, and returns the OAuth
// handler of its client credentials (nil without). Both are the gateway's own credentials: the
// agent's request reaches the upstream only as the MCP message the gateway sends, never with
// the agent's headers.
func upstreamCredentials(path string, u config.MCPUpstream, hc *http.Client, log *slog.Logger) (*upauth.ClientCredentials, error) {
	if len(u.Headers) > 0 {
		var hs []upauth.Header
		for name, v := range u.Headers {
			hs = append(hs, upauth.Header{Name: name, Value: upauth.Secret{Path: path + ".headers." + name,
				Env: v.ValueEnv, File: v.ValueFile, Literal: v.Value, Prefix: v.Prefix}})
		}
		t, err := upauth.NewHeaders(u.URL, hs, hc.Transport)
		if err != nil {
			return nil, err
		}
		hc.Transport = t
	}
	o := u.OAuth
	if o == nil {
		return nil, nil
	}
	secret := upauth.Secret{Path: path + ".oauth", Env: o.ClientSecretEnv, File: o.ClientSecretFile}
	if o.PrivateKeyFile != "" {
		secret = upauth.Secret{Path: path + ".oauth.private_key_file", File: o.PrivateKeyFile}
	}
	return upauth.NewClientCredentials(upauth.OAuth{Path: path + ".oauth", Endpoint: u.URL, TokenURL: o.TokenURL,
		Issuer: o.Issuer, ClientID: o.ClientID, Secret: secret,
		Scopes: o.Scopes, Resource: o.Resource, Audience: o.Audience, AuthMethod: o.AuthMethod, Logger: log})
}

// UpstreamCommand is the transport to an upstream server run as a child: its stdin/stdout carry
// MCP, its stderr goes to stderr, it dies with the gateway, and on Close it gets one second to
// exit after its stdin closes before it is terminated (MCP clients such as the TypeScript SDK
// kill a wrapper that takes longer). PORTCULLIS_* variables are never passed on: the server
// must not see the agent's credential.
func UpstreamCommand(name string, args, env []string, stderr *os.File) sdk.Transport {
	cmd := exec.Command(name, args...)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PORTCULLIS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stderr = stderr
	dieWithParent(cmd)
	return &stdioconn.Command{Cmd: cmd, TerminateDuration: time.Second}
}

// MCPGateway connects to upstreams and governs them with this app's guard. The caller closes it.
// An upstream that cannot be reached fails it (the stdio wrapper: its one upstream is all it
// serves).
func (a *App) MCPGateway(ctx context.Context, ups []mcpgw.Upstream) (*mcpgw.Gateway, error) {
	return a.mcpGateway(ctx, ups, false)
}

// mcpGateway is MCPGateway; startDown (serve) starts with an unreachable upstream marked down,
// reported by /readyz and retried in the background.
func (a *App) mcpGateway(ctx context.Context, ups []mcpgw.Upstream, startDown bool) (*mcpgw.Gateway, error) {
	cfg := a.cfg
	gw, err := mcpgw.New(ctx, mcpgw.Options{
		Guard:        a.guard,
		Pins:         mcpgw.OpenPins(filepath.Join(cfg.DataDir, PinsFile)),
		ApprovalWait: cfg.MCP.ApprovalWait,
		CallTimeout:  cfg.MCP.CallTimeout,
		Sampling:     cfg.MCP.ServerRequests.SamplingAllowed(),
		Elicitation:  cfg.MCP.ServerRequests.ElicitationAllowed(),
		RelayLogs:    cfg.MCP.LogsRelayed(),
		StartDown:    startDown,
		Logger:       a.log.With(slog.String("component", "mcp")),
	}, ups)
	var ue *mcpgw.UpstreamError
	if errors.As(err, &ue) {
		return nil, err // names the upstream and the cause already
	}
	if err != nil {
		return nil, fmt.Errorf("mcp gateway: %w", err)
	}
	return gw, nil
}

// mcpRoutes mounts the Streamable HTTP gateway at /mcp. Every HTTP request is authenticated
// once, before the SDK sees it (an unauthenticated client cannot even open a session), with an
// API key, a JWT or an RFC 9421 signature; the agent found is handed to every decision the
// request's messages lead to (mcpgw.HTTPAgents), so a signature's single-use nonce is spent
// exactly once.
func (a *App) mcpRoutes(gw *mcpgw.Gateway) func(mux *http.ServeMux) {
	agents := &mcpgw.HTTPAgents{}
	srv := gw.Server(agents.Credentials)
	// Resumable streams: every SSE event gets an id, a call's stream starts with a priming
	// event, and a client whose connection dropped resumes with Last-Event-ID on GET and gets
	// what it missed (the call's result included). The store is bounded: past
	// mcpEventStoreBytes the oldest events go first; a session's events go when it ends.
	events := sdk.NewMemoryEventStore(nil)
	events.SetMaxBytes(mcpEventStoreBytes)
	// A request the agent cancelled gets no answer (MCP), on its stream or on resumption: the
	// SDK would still write one.
	cancels := mcpgw.NewCancelledAnswers(a.cfg.Limits.MaxBodyBytes)
	h := cancels.Handler(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv },
		&sdk.StreamableHTTPOptions{Logger: a.log.With(slog.String("component", "mcp")), MaxRequestBodyBytes: a.cfg.Limits.MaxBodyBytes,
			SessionTimeout: a.cfg.MCP.SessionIdleTimeout, EventStore: cancels.EventStore(events)}))
	sessions := &sessionOwners{owners: map[string]string{}, live: func(yield func(string) bool) {
		for ss := range srv.Sessions() {
			if !yield(ss.ID()) {
				return
			}
		}
	}}
	return func(mux *http.ServeMux) {
		mux.HandleFunc("GET /.well-known/oauth-protected-resource", a.protectedResource)
		mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", a.protectedResource)
		mux.Handle("/mcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			agent, status, msg := a.mcpAuthenticate(w, r)
			if agent == nil {
				if status == http.StatusUnauthorized {
					if base, ok := a.resourceBase(); ok {
						w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer resource_metadata=%q`, base+"/.well-known/oauth-protected-resource/mcp"))
					} else {
						w.Header().Set("WWW-Authenticate", "Bearer")
					}
				}
				http.Error(w, msg, status)
				return
			}
			// Sessions are bound to the agent that opened them: another agent's credential
			// cannot ride on a session ID it saw or guessed.
			if sid := r.Header.Get("Mcp-Session-Id"); sid != "" {
				if owner, ok := sessions.owner(sid); ok && owner != agent.ID {
					http.Error(w, "session not found", http.StatusNotFound)
					return
				}
			}
			r, unbind := agents.Bind(r, agent)
			defer func() {
				// A client that drops its connection mid-call resumes later (Last-Event-ID):
				// the SDK goes on handling the request's messages after this returns, so
				// they keep their agent a while longer instead of failing as unauthenticated.
				if r.Context().Err() != nil {
					time.AfterFunc(droppedBindingGrace, unbind)
					return
				}
				unbind()
			}()
			h.ServeHTTP(&sessionRecorder{ResponseWriter: w, agent: agent.ID, sessions: sessions, req: r}, r)
		}))
	}
}

// mcpAuthenticate authenticates one /mcp HTTP request. A signed request's body is read here
// (bounded), checked against its Content-Digest with the signature, and put back for the SDK.
// A credential that fails is recorded as a denial by the guard (a tampered, replayed or stale
// signature is evidence); a request with no credential at all is only answered 401, as MCP
// clients probe that way to discover the authorization server.
func (a *App) mcpAuthenticate(w http.ResponseWriter, r *http.Request) (agent *identity.Agent, status int, msg string) {
	c := identity.CredentialsFromRequest(r, nil)
	if c.APIKey == "" && c.BearerToken == "" && c.Request == nil {
		return nil, http.StatusUnauthorized, "unauthenticated: " + identity.Code(identity.ErrMissing)
	}
	if c.Request != nil {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.Limits.MaxBodyBytes))
		if err != nil {
			if errors.As(err, new(*http.MaxBytesError)) {
				return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body exceeds %d bytes", a.cfg.Limits.MaxBodyBytes)
			}
			return nil, http.StatusBadRequest, "unreadable body"
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		c.Body = body
	}
	agent, err := a.guard.Authenticate(r.Context(), "mcp", c)
	if errors.Is(err, identity.ErrAmbiguous) {
		return nil, http.StatusBadRequest, "ambiguous credentials: " + identity.Code(err)
	}
	if err != nil {
		return nil, http.StatusUnauthorized, "unauthenticated: " + identity.Code(err)
	}
	return agent, 0, ""
}

// sessionOwners maps each Mcp-Session-Id to the agent that opened it.
type sessionOwners struct {
	mu     sync.Mutex
	owners map[string]string
	// live lists the IDs of the sessions the SDK still holds: a session closed for idleness
	// (or by its client without a DELETE) leaves no trace otherwise.
	live iter.Seq[string]
}

func (o *sessionOwners) owner(id string) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	a, ok := o.owners[id]
	return a, ok
}

// add records a new session's owner and forgets the sessions that ended, so the map holds
// only live sessions. New sessions are rare next to requests; the sweep is O(live sessions).
func (o *sessionOwners) add(id, agent string) {
	o.mu.Lock()
	_, known := o.owners[id]
	o.mu.Unlock()
	if known { // the SDK names the session on every answer, not only the first
		return
	}
	alive := map[string]bool{id: true}
	for sid := range o.live {
		alive[sid] = true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for sid := range o.owners {
		if !alive[sid] {
			delete(o.owners, sid)
		}
	}
	if _, ok := o.owners[id]; !ok {
		o.owners[id] = agent
	}
}

func (o *sessionOwners) remove(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.owners, id)
}

// sessionRecorder notes which agent a new session (the Mcp-Session-Id the SDK assigns in its
// answer to initialize) belongs to; a DELETE forgets it.
type sessionRecorder struct {
	http.ResponseWriter
	agent    string
	sessions *sessionOwners
	req      *http.Request
	done     bool
}

func (s *sessionRecorder) WriteHeader(code int) {
	if !s.done {
		s.done = true
		switch {
		case code >= 300:
		case s.req.Method == http.MethodDelete:
			s.sessions.remove(s.req.Header.Get("Mcp-Session-Id"))
		case s.Header().Get("Mcp-Session-Id") != "":
			s.sessions.add(s.Header().Get("Mcp-Session-Id"), s.agent)
		}
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *sessionRecorder) Write(b []byte) (int, error) {
	if !s.done {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *sessionRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush keeps server-sent event streams streaming through the wrapper.
func (s *sessionRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (a *App) resourceBase() (string, bool) {
	if u := a.cfg.MCP.ResourceURL; u != "" {
		return strings.TrimSuffix(strings.TrimSuffix(u, "/"), "/mcp"), true
	}
	// Never the request's Host header: whoever sends the request would choose the URL the
	// metadata announces. Without resource_url the gateway's own address stands in, when it
	// names one host and port; a wildcard listen address names none, and then there is no
	// metadata at all.
	addr := a.cfg.Listen
	if p := a.servedAddr.Load(); p != nil {
		addr = *p
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" || port == "0" {
		return "", false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", false
	}
	return "http://" + net.JoinHostPort(host, port), true
}

// protectedResource is the OAuth 2.0 Protected Resource Metadata (RFC 9728) the MCP
// authorization spec points clients to: which issuers' tokens /mcp accepts.
func (a *App) protectedResource(w http.ResponseWriter, r *http.Request) {
	base, ok := a.resourceBase()
	if !ok {
		http.Error(w, "no protected-resource metadata: set mcp.resource_url", http.StatusNotFound)
		return
	}
	issuers := []string{}
	for _, is := range a.rt.Load().cfg.Identity.JWTIssuers {
		issuers = append(issuers, is.Issuer)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"resource":                 base + "/mcp",
		"authorization_servers":    issuers,
		"bearer_methods_supported": []string{"header"},
		"resource_name":            "Portcullis MCP gateway",
	})
}
