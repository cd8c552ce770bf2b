package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// cookieName is the session cookie. Its value is a random token; the server keeps only its hash.
const cookieName = "portcullis_console"

// maxSessions bounds the sessions held at once: sign-ins beyond it are refused until some end.
const maxSessions = 10_000

// session is one signed-in browser. The credential is held in memory only, to re-authenticate it
// on every request (a revoked key ends the session at once); it never leaves the server. A
// session signed in through OIDC holds the verified identity instead, checked again the same way.
type session struct {
	key        [sha256.Size]byte
	credential string
	oidc       *OIDCIdentity
	csrf       string
	created    time.Time
	lastSeen   time.Time
}

func (s *session) checkCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) == 1
}

type sessions struct {
	mu        sync.Mutex
	m         map[[sha256.Size]byte]*session
	ttl, idle time.Duration
	now       func() time.Time
}

func newSessions(ttl, idle time.Duration, now func() time.Time) *sessions {
	return &sessions{m: map[[sha256.Size]byte]*session{}, ttl: ttl, idle: idle, now: now}
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session for credential (or, signed in through OIDC, id) and returns its cookie
// token; false when full.
func (ss *sessions) create(credential string, id *OIDCIdentity) (string, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	if len(ss.m) >= maxSessions {
		ss.sweepLocked(now)
		if len(ss.m) >= maxSessions {
			return "", false
		}
	}
	token := randomToken()
	s := &session{key: sha256.Sum256([]byte(token)), credential: credential, oidc: id, csrf: randomToken(), created: now, lastSeen: now}
	ss.m[s.key] = s
	return token, true
}

func (ss *sessions) sweepLocked(now time.Time) {
	for k, s := range ss.m {
		if ss.expired(s, now) {
			delete(ss.m, k)
		}
	}
}

func (ss *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.created) >= ss.ttl || now.Sub(s.lastSeen) >= ss.idle
}

// get returns the live session r's cookie names, or nil.
func (ss *sessions) get(r *http.Request, _ string) *session {
	cookies := r.CookiesNamed(cookieName)
	if len(cookies) != 1 || len(cookies[0].Value) > 64 {
		return nil // none, or two: ambiguous, never chosen
	}
	key := sha256.Sum256([]byte(cookies[0].Value))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[key]
	if !ok {
		return nil
	}
	now := ss.now()
	if ss.expired(s, now) {
		delete(ss.m, key)
		return nil
	}
	s.lastSeen = now
	return s
}

// alive reports whether s is still a live session (not signed out, not expired).
func (ss *sessions) alive(s *session) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	_, ok := ss.m[s.key]
	return ok && !ss.expired(s, ss.now())
}

func (ss *sessions) drop(s *session) {
	ss.mu.Lock()
	delete(ss.m, s.key)
	ss.mu.Unlock()
}

// cookie is the session cookie: HttpOnly, SameSite=Strict, scoped to the console's path, and
// Secure when the console is served over TLS.
func cookie(path, value string, secure bool, maxAge int) *http.Cookie {
	return &http.Cookie{Name: cookieName, Value: value, Path: path, HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteStrictMode, MaxAge: maxAge}
}
