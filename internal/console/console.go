// Package console is the web console served by `serve` under console.path: the approvals queue
// (live over server-sent events), the audit explorer, and the overview, agents and policies pages.
// Pages are rendered on the server with
// html/template; the stylesheet and the one script are embedded (go:embed), so building the
// binary needs no JavaScript toolchain.
//
// Every page is authorised on the server. A person signs in with their approver key (or through
// an OpenID Connect provider, oidc.go); the session keeps the key (or the verified identity) in
// memory only and checks it again on every request, so a revoked key or a person removed from
// approvals.approvers is signed out at their next click. With a SessionStore (shared.go) the
// session lives where every replica reads it, holding no secret: a Grant naming the key or the
// person, checked again the same way. Agents' credentials are never accepted:
// approver keys live in a key store of their own, and the OIDC client refuses the decision path's
// audiences.
//
// The console depends on the approval engine's types, the ledger's read side and the policy
// package's read side only: it declares what it needs (Queue, Authenticator, OIDCAuthenticator,
// AgentDirectory, ledger.Store, PolicyState) and app supplies it.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/auditindex"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Role is what a signed-in person may do in the console.
type Role string

const (
	// RoleApprover sees and resolves the requests its scopes cover, and the ledger records of
	// the agents and tools its scopes cover.
	RoleApprover Role = "approver"
	// RoleAuditor reads everything and changes nothing.
	RoleAuditor Role = "auditor"
	// RoleAdmin reads everything and approves within its scopes.
	RoleAdmin Role = "admin"
)

// Principal is a signed-in person: the approver the approval engine checks, and their role.
type Principal struct {
	Approver approval.Approver
	Role     Role
}

// readsAll: auditors and admins read every request and every record.
func (p Principal) readsAll() bool { return p.Role == RoleAuditor || p.Role == RoleAdmin }

// mayApprove: approvers and admins vote (the engine still checks scope, self-approval, agents).
func (p Principal) mayApprove() bool { return p.Role == RoleApprover || p.Role == RoleAdmin }

// sees reports whether p may see a request or record of agent and tool.
func (p Principal) sees(agent, tool string) bool {
	if p.readsAll() {
		return true
	}
	return agent != "" && tool != "" && p.Approver.Covers(agent, tool)
}

// Authenticator turns a credential typed into the sign-in form into a person. It must refuse an
// agent's credential and anyone not declared under approvals.approvers.
type Authenticator interface {
	ConsolePrincipal(ctx context.Context, credential string) (Principal, error)
}

// Queue is what the console needs of the approval engine (approval.Engine).
type Queue interface {
	List(ctx context.Context, f approval.Filter) ([]approval.Request, error)
	Get(ctx context.Context, id string) (approval.Request, error)
	Approve(ctx context.Context, id string, a approval.Approver, comment string) (approval.Request, error)
	Deny(ctx context.Context, id string, a approval.Approver, comment string) (approval.Request, error)
}

// Options configures the console.
type Options struct {
	// Path is the mount point, e.g. "/console" (no trailing slash).
	Path  string
	Queue Queue
	Auth  Authenticator
	// Ledger is read (never written): search, records, inclusion proofs, the latest checkpoint.
	Ledger ledger.Store
	// Index, when set, is the ledger's audit index (kept by an auditindex.Indexer): searches
	// that filter by field or time read it instead of scanning. Nil: searches scan.
	Index auditindex.Reader
	// Agents lists the declared agents for the agents page; nil: it lists the agents the ledger
	// saw.
	Agents AgentDirectory
	// Policies is the policy set in force, for the policies page; nil: that page says none is
	// loaded.
	Policies func() PolicyState
	// Verifiers check the latest checkpoint's signature for the banner.
	Verifiers note.Verifiers
	// OIDC, when set, signs people in through an OpenID Connect provider beside approver keys.
	OIDC *OIDCOptions
	// Sessions, when set, keeps sessions where every replica reads them; Auth must then be a
	// GrantAuthenticator. Nil: in this process's memory.
	Sessions SessionStore
	// SessionKey authenticates what Sessions holds (DeriveSessionKey): the same on every replica,
	// and never in the store. Required with Sessions.
	SessionKey []byte
	// SessionTTL and IdleTimeout bound a session (defaults 8h and 30m).
	SessionTTL, IdleTimeout time.Duration
	// Poll is how often a live queue looks for changes (default 1s).
	Poll   time.Duration
	Logger *slog.Logger
	Now    func() time.Time
}

// Console serves the console's pages.
type Console struct {
	o        Options
	log      *slog.Logger
	pages    map[string]*template.Template
	sessions sessionBackend
	grants   GrantAuthenticator // set with a SessionStore
	streams  chan struct{}      // live-queue streams in flight, bounded
	cop      *http.CrossOriginProtection
	oidc     *oidcClient // nil: no OIDC sign-in
	// refused counts the shared sessions this replica could not verify (SessionsRefused).
	refused atomic.Uint64
}

// maxStreams bounds the live-queue streams open at once, across sessions.
const maxStreams = 256

// New returns the console.
func New(o Options) (*Console, error) {
	if o.Queue == nil || o.Auth == nil || o.Ledger == nil {
		return nil, errors.New("console: queue, authenticator and ledger are required")
	}
	if !strings.HasPrefix(o.Path, "/") || strings.HasSuffix(o.Path, "/") {
		return nil, errors.New("console: path must start with / and not end with one")
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 8 * time.Hour
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Console{o: o, log: log, sessions: newMemorySessions(o.SessionTTL, o.IdleTimeout, o.Now),
		streams: make(chan struct{}, maxStreams), cop: http.NewCrossOriginProtection()}
	if o.Sessions != nil {
		ga, ok := o.Auth.(GrantAuthenticator)
		if !ok {
			return nil, errors.New("console: shared sessions need an authenticator that checks a grant again")
		}
		if len(o.SessionKey) < 32 {
			return nil, errors.New("console: shared sessions need a session key of at least 32 bytes")
		}
		c.grants = ga
		c.sessions = &sharedSessions{st: o.Sessions, key: o.SessionKey, ttl: o.SessionTTL, idle: o.IdleTimeout, now: o.Now, refuse: c.refuse}
	}
	var err error
	if o.OIDC != nil {
		if c.oidc, err = newOIDCClient(*o.OIDC); err != nil {
			return nil, err
		}
		if o.Sessions != nil {
			// Behind replicas the provider's redirect may come back to another replica than
			// the one that began the sign-in: the state cookie is then signed with a key every
			// replica derives from the key they share, not one of this process's own.
			c.oidc.key = oidcStateKey(o.SessionKey)
		}
	}
	if c.pages, err = parsePages(o.Path); err != nil {
		return nil, err
	}
	return c, nil
}

func parsePages(base string) (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"base":     func() string { return base },
		"params":   markRedacted,
		"ago":      ago,
		"dur":      duration,
		"ts":       func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"tsp":      func(t *time.Time) string { return stamp(t) },
		"join":     strings.Join,
		"add":      func(a, b int) int { return a + b },
		"findings": findingKinds,
		"seg":      url.PathEscape,
		"rows":     func(title, id string, rows []row) rowList { return rowList{title, id, rows} },
		// statsBudget as people read it: the pages say how far back they read from the
		// constant itself, so a new budget needs no edit of the pages.
		"statsBudget": func() string { return grouped(statsBudget) },
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}

// Register mounts the console on mux under the configured path.
func (c *Console) Register(mux *http.ServeMux) {
	p := c.o.Path
	static, _ := fs.Sub(staticFS, "static")
	fileServer := http.StripPrefix(p+"/static/", http.FileServerFS(static))
	mux.Handle("GET "+p+"/static/", c.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		fileServer.ServeHTTP(w, r)
	})))
	mux.Handle("GET "+p+"/login", c.headers(http.HandlerFunc(c.loginPage)))
	mux.Handle("POST "+p+"/login", c.headers(c.cop.Handler(http.HandlerFunc(c.login))))
	mux.Handle("POST "+p+"/logout", c.headers(c.cop.Handler(http.HandlerFunc(c.logout))))
	if c.oidc != nil {
		mux.Handle("GET "+p+"/oidc/start", c.headers(http.HandlerFunc(c.oidcStart)))
		mux.Handle("GET "+p+"/oidc/callback", c.headers(http.HandlerFunc(c.oidcCallback)))
	}
	mux.Handle("GET "+p, http.RedirectHandler(p+"/approvals", http.StatusSeeOther))
	mux.Handle("GET "+p+"/{$}", http.RedirectHandler(p+"/approvals", http.StatusSeeOther))
	mux.Handle("GET "+p+"/approvals", c.page(c.queuePage))
	mux.Handle("GET "+p+"/approvals/rows", c.page(c.queueRows))
	mux.Handle("GET "+p+"/approvals/events", c.page(c.queueEvents))
	mux.Handle("GET "+p+"/approvals/history", c.page(c.historyPage))
	mux.Handle("GET "+p+"/approvals/{id}", c.page(c.requestPage))
	mux.Handle("POST "+p+"/approvals/{id}/approve", c.page(func(w http.ResponseWriter, r *http.Request, s *session, pr Principal) {
		c.resolve(w, r, s, pr, true)
	}))
	mux.Handle("POST "+p+"/approvals/{id}/deny", c.page(func(w http.ResponseWriter, r *http.Request, s *session, pr Principal) {
		c.resolve(w, r, s, pr, false)
	}))
	mux.Handle("GET "+p+"/overview", c.page(c.overviewPage))
	mux.Handle("GET "+p+"/alerts", c.page(c.alertsPage))
	mux.Handle("GET "+p+"/agents", c.page(c.agentsPage))
	mux.Handle("GET "+p+"/agents/{id}", c.page(c.agentPage))
	mux.Handle("GET "+p+"/sessions/{id}", c.page(c.sessionPage))
	mux.Handle("GET "+p+"/policies", c.page(c.policiesPage))
	mux.Handle("GET "+p+"/policies/source", c.page(c.policySource))
	mux.Handle("GET "+p+"/audit", c.page(c.auditPage))
	mux.Handle("GET "+p+"/audit/export", c.page(c.auditExport))
	mux.Handle("GET "+p+"/audit/{seq}", c.page(c.recordPage))
	mux.Handle("GET "+p+"/audit/{seq}/proof", c.page(c.recordProof))
	// Anything else under the path is not found, with the console's headers.
	mux.Handle(p+"/", c.headers(http.NotFoundHandler()))
}

// csp: no inline script or style, nothing from elsewhere, no framing, forms post only here.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// headers sets the security headers every console response carries.
func (c *Console) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if h.Get("Cache-Control") == "" {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// handlerFunc is a page handler run for a signed-in person.
type handlerFunc func(w http.ResponseWriter, r *http.Request, s *session, p Principal)

// maxFormBytes bounds a form post (a comment is at most approval.MaxComment bytes).
const maxFormBytes = 16 << 10

// page authenticates the session, re-authenticates its credential, and — for a state change —
// checks the request's origin and its CSRF token before running h.
func (c *Console) page(h handlerFunc) http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := sessionToken(r)
		if !ok {
			c.toLogin(w, r)
			return
		}
		s, err := c.sessions.get(r.Context(), token)
		if err != nil {
			// Fail closed: nobody is signed in by a session that could not be read.
			c.storeFailed(w, r, "read", err)
			return
		}
		if s == nil {
			c.toLogin(w, r)
			return
		}
		p, err := c.principal(r.Context(), s)
		if errors.Is(err, ErrNotHere) {
			c.refuse(r.Context(), err.Error())
			c.toLogin(w, r)
			return
		}
		if err != nil {
			// The key was revoked or its owner is no longer declared: the session ends.
			c.endSession(r.Context(), s, err)
			c.toLogin(w, r)
			return
		}
		// Verified here: only now is the session in use, and its idle deadline moves on. With a
		// shared store that is a second round trip after get's read, the price of not letting a
		// replica that refuses the session keep it alive (console requests are few).
		if err := c.sessions.touch(r.Context(), s); err != nil {
			c.storeFailed(w, r, "touch", err)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				c.fail(w, r, http.StatusBadRequest, "The form could not be read.")
				return
			}
			if !s.checkCSRF(r.PostForm.Get("csrf")) {
				c.log.LogAttrs(r.Context(), slog.LevelWarn, "console: state change without a valid CSRF token refused",
					slog.String("principal", p.Approver.ID), slog.String("path", r.URL.Path))
				c.fail(w, r, http.StatusForbidden, "This form has expired or did not come from the console. Reload the page and try again.")
				return
			}
		}
		h(w, r, s, p)
	})
	return c.headers(c.cop.Handler(inner))
}

// principal checks a session's credential, grant or OIDC identity again, as at sign-in; it must
// still name the approver who signed in.
func (c *Console) principal(ctx context.Context, s *session) (Principal, error) {
	var p Principal
	var err error
	switch {
	case s.oidc != nil:
		if c.oidc == nil {
			return Principal{}, fmt.Errorf("%w: OIDC sign-in is not configured here", ErrNotHere)
		}
		p, err = c.oidc.o.Auth.ConsoleOIDCPrincipal(ctx, *s.oidc)
	case s.grant != nil:
		if c.grants == nil {
			return Principal{}, fmt.Errorf("%w: a grant without a session store", ErrNotHere)
		}
		p, err = c.grants.ConsoleGrantPrincipal(ctx, *s.grant, c.o.Now())
	default:
		p, err = c.o.Auth.ConsolePrincipal(ctx, s.credential)
	}
	if err == nil && s.signedIn != "" && p.Approver.ID != s.signedIn {
		err = fmt.Errorf("the session signed in as %q now names %q", s.signedIn, p.Approver.ID)
	}
	return p, err
}

// ErrNotHere: a shared session this replica cannot check (an OIDC sign-in where OIDC is not
// configured, an approver key this replica's key store does not hold). The person is not signed
// in here, but the session is not this replica's to end: the replicas that can check it still
// serve it. A GrantAuthenticator wraps it for what its replica cannot answer; a refusal without
// it (a key revoked, an approver no longer declared) ends the session everywhere.
var ErrNotHere = errors.New("the session cannot be checked on this replica")

// refuse counts a shared session this replica cannot verify or check (why) and logs the first:
// every request of that person would log it again, and the counter says how often.
func (c *Console) refuse(ctx context.Context, why string) {
	level := slog.LevelDebug
	if c.refused.Add(1) == 1 {
		level = slog.LevelWarn
	}
	c.log.LogAttrs(ctx, level, "console: a stored session cannot be verified on this replica; it is refused here and left for the replicas that can (a hash key, OIDC configuration or approver key file that differs between replicas?)",
		slog.String("why", why))
}

// SessionsRefused counts the shared sessions this replica refused because it cannot verify
// them (sealed under another hash key, or an OIDC sign-in where OIDC is not configured).
func (c *Console) SessionsRefused() uint64 { return c.refused.Load() }

// signIn starts a session for p — holding cred in memory, or g in a shared store — or for the
// OIDC identity id, sets its cookie and reports true; on false the sign-in page was answered.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request, p Principal, cred string, g *Grant, id *OIDCIdentity) bool {
	s, token := newSession(c.o.Now())
	s.signedIn, s.oidc = p.Approver.ID, id
	if c.grants != nil {
		s.grant = g
	} else {
		s.credential = cred
	}
	if err := c.sessions.create(r.Context(), s); err != nil {
		msg := "Too many sessions are open; try again later."
		if !errors.Is(err, errSessionsFull) {
			c.log.LogAttrs(r.Context(), slog.LevelError, "console: session store: create", slog.Any("error", err))
			msg = "The console cannot keep sessions right now; try again shortly."
		}
		c.loginFail(w, r, http.StatusServiceUnavailable, msg)
		return false
	}
	http.SetCookie(w, cookie(c.o.Path, token, r.TLS != nil, int(c.o.SessionTTL.Seconds())))
	return true
}

// endSession drops s after its credential was refused (err); a store that cannot drop it is
// logged, and the request is refused all the same.
func (c *Console) endSession(ctx context.Context, s *session, err error) {
	c.log.LogAttrs(ctx, slog.LevelWarn, "console session ended: credential no longer accepted", slog.Any("error", err))
	if err := c.sessions.drop(ctx, s); err != nil {
		c.log.LogAttrs(ctx, slog.LevelError, "console: session store: drop", slog.Any("error", err))
	}
}

// storeFailed answers 503 when the session store failed (op): never a signed-in page.
func (c *Console) storeFailed(w http.ResponseWriter, r *http.Request, op string, err error) {
	c.log.LogAttrs(r.Context(), slog.LevelError, "console: session store: "+op, slog.Any("error", err))
	c.fail(w, r, http.StatusServiceUnavailable, "The console cannot reach its session store; try again shortly.")
}

func (c *Console) toLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || strings.HasSuffix(r.URL.Path, "/events") || strings.HasSuffix(r.URL.Path, "/rows") {
		http.Error(w, "sign in to the console", http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, c.o.Path+"/login", http.StatusSeeOther)
}

// grouped writes n (not negative) with its thousands grouped, as the pages show counts:
// 200000 is "200,000".
func grouped(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// rowList is a titled table of records (the agent page's sections).
type rowList struct {
	Title, ID string
	Rows      []row
}

// view is what every page template receives.
type view struct {
	Title string
	Nav   string
	P     *Principal
	CSRF  string
	Flash string
	Data  any
	// Refresh, when set, sends the browser on to this URL (a meta refresh).
	Refresh string
	// Menu entries shown only to the roles whose pages they open.
	ShowAgents, ShowPolicies bool
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	if v.P != nil {
		v.ShowAgents, v.ShowPolicies = v.P.readsAll(), v.P.Role == RoleAdmin
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout.html", v); err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelError, "console: render", slog.String("page", name), slog.Any("error", err))
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error", view{Title: http.StatusText(status), Data: msg})
}
