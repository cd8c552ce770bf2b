package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"sync"
	"time"
)

// cookieName is the session cookie. Its value is a random token; the server keeps only its hash.
const cookieName = "portcullis_console"

// maxSessions bounds the sessions held at once: sign-ins beyond it are refused until some end.
// In memory it is this process's bound; with a SessionStore it bounds the live sessions the
// store holds for every replica together.
const maxSessions = 10_000

// session is one signed-in browser. In memory the credential is held to re-authenticate it on
// every request (a revoked key ends the session at once); it never leaves the server. A session
// kept in a shared store holds a Grant instead (never a secret), checked again the same way. A
// session signed in through OIDC holds the verified identity, checked again the same way.
type session struct {
	key        [sha256.Size]byte
	credential string
	grant      *Grant
	oidc       *OIDCIdentity
	// signedIn is the approver ID of who signed in: a re-check that names someone else (a key
	// given to another owner) ends the session.
	signedIn string
	csrf     string
	created  time.Time
	lastSeen time.Time
}

func (s *session) checkCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) == 1
}

// csrfOf is the CSRF token of the session whose cookie holds token: derived from the token with
// a one-way function, so every replica computes it from the cookie and no store keeps it, and
// neither the page that shows it nor the store's digest of the token gives the cookie.
func csrfOf(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("portcullis console csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// errSessionsFull: maxSessions sessions are live.
var errSessionsFull = errors.New("too many console sessions are open")

// sessionBackend keeps sessions: memory (one process) or a SessionStore (every replica). An
// error on a read is never read as "signed in": the console answers 503.
type sessionBackend interface {
	// create stores s (its key set) or returns errSessionsFull.
	create(ctx context.Context, s *session) error
	// get returns the live session whose cookie holds token, or nil. It does not move the idle
	// deadline: only a request this replica verified does, by touch.
	get(ctx context.Context, token string) (*session, error)
	// touch moves s's idle deadline on, after this replica verified it.
	touch(ctx context.Context, s *session) error
	// alive reports whether s is still live, without moving its idle deadline.
	alive(ctx context.Context, s *session) (bool, error)
	// drop ends s everywhere.
	drop(ctx context.Context, s *session) error
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// newSession starts a session and returns it with its cookie token.
func newSession(now time.Time) (*session, string) {
	token := randomToken()
	return &session{key: sha256.Sum256([]byte(token)), csrf: csrfOf(token), created: now, lastSeen: now}, token
}

// sessionToken reads r's session cookie; false when there is none, or two (ambiguous, never
// chosen), or one too long to be ours.
func sessionToken(r *http.Request) (string, bool) {
	cookies := r.CookiesNamed(cookieName)
	if len(cookies) != 1 || cookies[0].Value == "" || len(cookies[0].Value) > 64 {
		return "", false
	}
	return cookies[0].Value, true
}

// memorySessions keeps sessions in this process: a restart signs everyone out, and behind
// several replicas a person needs to come back to the same one.
type memorySessions struct {
	mu        sync.Mutex
	m         map[[sha256.Size]byte]*session
	ttl, idle time.Duration
	now       func() time.Time
}

func newMemorySessions(ttl, idle time.Duration, now func() time.Time) *memorySessions {
	return &memorySessions{m: map[[sha256.Size]byte]*session{}, ttl: ttl, idle: idle, now: now}
}

func (ss *memorySessions) create(_ context.Context, s *session) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= maxSessions {
		ss.sweepLocked(ss.now())
		if len(ss.m) >= maxSessions {
			return errSessionsFull
		}
	}
	ss.m[s.key] = s
	return nil
}

func (ss *memorySessions) sweepLocked(now time.Time) {
	for k, s := range ss.m {
		if ss.expired(s, now) {
			delete(ss.m, k)
		}
	}
}

func (ss *memorySessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.created) >= ss.ttl || now.Sub(s.lastSeen) >= ss.idle
}

func (ss *memorySessions) get(_ context.Context, token string) (*session, error) {
	key := sha256.Sum256([]byte(token))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[key]
	if !ok {
		return nil, nil
	}
	now := ss.now()
	if ss.expired(s, now) {
		delete(ss.m, key)
		return nil, nil
	}
	return s, nil
}

func (ss *memorySessions) touch(_ context.Context, s *session) error {
	ss.mu.Lock()
	s.lastSeen = ss.now()
	ss.mu.Unlock()
	return nil
}

func (ss *memorySessions) alive(_ context.Context, s *session) (bool, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	_, ok := ss.m[s.key]
	return ok && !ss.expired(s, ss.now()), nil
}

func (ss *memorySessions) drop(_ context.Context, s *session) error {
	ss.mu.Lock()
	delete(ss.m, s.key)
	ss.mu.Unlock()
	return nil
}

// cookie is the session cookie: HttpOnly, SameSite=Strict, scoped to the console's path, and
// Secure when the console is served over TLS.
func cookie(path, value string, secure bool, maxAge int) *http.Cookie {
	return &http.Cookie{Name: cookieName, Value: value, Path: path, HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteStrictMode, MaxAge: maxAge}
}
