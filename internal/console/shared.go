package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SessionStore keeps signed-in sessions where every replica reads them (store/postgres,
// store/redis), so that a person signed in at one replica is signed in at all of them and a
// restart signs nobody out. key is the SHA-256 of the session's cookie token — the token itself
// is never stored — and data is opaque to the store: who signed in and how they are checked
// again (a Grant, never a secret). Deadlines are the gateway's clock, passed in: the store
// compares, it does not read its own clock.
type SessionStore interface {
	// Create stores data under key, live until expires and while used within each idle
	// deadline (the first is idleUntil), unless max sessions are live at now: then false.
	// Sessions past either deadline at now are removed first.
	Create(ctx context.Context, key [sha256.Size]byte, data []byte, now, idleUntil, expires time.Time, max int) (bool, error)
	// Touch returns the data under key when it is live at now, moving its idle deadline to
	// min(now+idle, expires) when idle > 0; nil when there is none or it has expired (then it is
	// removed).
	Touch(ctx context.Context, key [sha256.Size]byte, now time.Time, idle time.Duration) ([]byte, error)
	// Delete removes the session under key; none is not an error.
	Delete(ctx context.Context, key [sha256.Size]byte) error
}

// Grant is what a session kept in a SessionStore holds of how its person signed in: never a
// secret, so that a copy of the store gives no credential and no cookie. KeyID names an approver
// key: the key store is asked again on every request (revoked, expired or given to another
// owner, the session ends). Issuer and Subject name the person an approvals issuer's token
// named, good until the token's own expiry, Until.
type Grant struct {
	KeyID   string    `json:"key_id,omitempty"`
	Issuer  string    `json:"iss,omitempty"`
	Subject string    `json:"sub,omitempty"`
	Until   time.Time `json:"until,omitzero"`
}

// GrantAuthenticator is an Authenticator whose sign-ins can be checked again without the
// credential: what Options.Sessions requires, since no replica keeps the credential.
type GrantAuthenticator interface {
	Authenticator
	// ConsoleGrant signs a person in as ConsolePrincipal does and returns the Grant to keep.
	ConsoleGrant(ctx context.Context, credential string) (Principal, Grant, error)
	// ConsoleGrantPrincipal checks a kept Grant again at now, as at sign-in.
	ConsoleGrantPrincipal(ctx context.Context, g Grant, now time.Time) (Principal, error)
}

// storedSession is a session's data in a SessionStore: how to check its person again (Grant or
// OIDC) and who they were at sign-in (Approver.ID, which a re-check must still name). Role,
// scopes and the like are not kept: every request checks the grant again and acts on that
// answer, so a stored copy could only go stale. Rows written when the whole approval.Approver
// and the role were kept still read: the extra fields are ignored.
type storedSession struct {
	V        int `json:"v"`
	Approver struct {
		ID string
	} `json:"approver"`
	Grant   *Grant        `json:"grant,omitempty"`
	OIDC    *OIDCIdentity `json:"oidc,omitempty"`
	Created time.Time     `json:"created"`
	// Expires is the signing-in replica's absolute deadline, kept so that a replica configured
	// with a longer session_ttl does not stretch it.
	Expires time.Time `json:"expires"`
}

const storedSessionVersion = 1

// sharedSessions keeps sessions in a SessionStore. The CSRF token is derived from the cookie
// (csrfOf), so every replica checks it without storing it.
type sharedSessions struct {
	st        SessionStore
	key       []byte // Options.SessionKey
	ttl, idle time.Duration
	now       func() time.Time
	// refuse counts (and logs) a stored session this replica cannot verify.
	refuse func(ctx context.Context, why string)
}

// DeriveSessionKey derives the key that authenticates stored sessions from key material the
// replicas already share (the ledger's hash key), so that no new secret has to be distributed,
// and no other use shares the key.
func DeriveSessionKey(shared []byte) []byte {
	m := hmac.New(sha256.New, shared)
	m.Write([]byte("portcullis console session key v1"))
	return m.Sum(nil)
}

// oidcStateKey derives the key that signs the OIDC sign-in's state cookie from the session key,
// under a label of its own, so that a flight cookie and a stored session never share a key.
func oidcStateKey(sessionKey []byte) []byte {
	m := hmac.New(sha256.New, sessionKey)
	m.Write([]byte("portcullis console oidc state key v1"))
	return m.Sum(nil)
}

// seal prefixes data with its MAC, bound to the session's key digest: someone who can write the
// store but holds no replica's data directory can neither make a session up under a token of
// their choosing nor move another person's session under one.
func (ss *sharedSessions) seal(key [sha256.Size]byte, data []byte) []byte {
	return append(ss.mac(key, data), data...)
}

func (ss *sharedSessions) mac(key [sha256.Size]byte, data []byte) []byte {
	m := hmac.New(sha256.New, ss.key)
	m.Write([]byte("portcullis console session v1\x00"))
	m.Write(key[:])
	m.Write(data)
	return m.Sum(nil)
}

// open returns sealed's data when its MAC holds for key.
func (ss *sharedSessions) open(key [sha256.Size]byte, sealed []byte) ([]byte, bool) {
	if len(sealed) < sha256.Size {
		return nil, false
	}
	data := sealed[sha256.Size:]
	return data, hmac.Equal(sealed[:sha256.Size], ss.mac(key, data))
}

func (ss *sharedSessions) create(ctx context.Context, s *session) error {
	if s.grant == nil && s.oidc == nil {
		// A credential is never written to a shared store.
		return errors.New("console: a shared session needs a grant or an OIDC identity")
	}
	exp := s.created.Add(ss.ttl)
	st := storedSession{V: storedSessionVersion, Grant: s.grant, OIDC: s.oidc, Created: s.created, Expires: exp}
	st.Approver.ID = s.signedIn
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	ok, err := ss.st.Create(ctx, s.key, ss.seal(s.key, data), s.created, minTime(s.created.Add(ss.idle), exp), exp, maxSessions)
	if err != nil {
		return fmt.Errorf("console session store: %w", err)
	}
	if !ok {
		return errSessionsFull
	}
	return nil
}

func (ss *sharedSessions) read(ctx context.Context, key [sha256.Size]byte, idle time.Duration) (*session, error) {
	now := ss.now()
	sealed, err := ss.st.Touch(ctx, key, now, idle)
	if err != nil {
		return nil, fmt.Errorf("console session store: %w", err)
	}
	if sealed == nil {
		return nil, nil
	}
	data, ok := ss.open(key, sealed)
	if !ok {
		// Not sealed with this replica's key: a session made up or moved in the store, or one
		// a replica with another hash key wrote (mid-rotation, misconfigured). Nobody is signed
		// in by it here; but a forgery and another key's session look alike, so it is left in
		// place — deleting it would sign a person out of the replicas that verify it. The
		// store's own deadlines collect it.
		ss.refuse(ctx, "its seal does not verify under this replica's key")
		return nil, nil
	}
	var st storedSession
	if json.Unmarshal(data, &st) != nil || st.V != storedSessionVersion || (st.Grant == nil && st.OIDC == nil) {
		// Sealed with this key, so a replica wrote it, in a form this one does not read (a
		// newer version): not signed in here, and not this replica's to end.
		ss.refuse(ctx, "its form is not one this replica reads")
		return nil, nil
	}
	// The absolute lifetime is this replica's, counted on its clock, whatever the stored
	// deadline says.
	if !now.Before(st.Expires) || !now.Before(st.Created.Add(ss.ttl)) {
		return nil, ss.st.Delete(ctx, key)
	}
	return &session{key: key, grant: st.Grant, oidc: st.OIDC, signedIn: st.Approver.ID, created: st.Created, lastSeen: now}, nil
}

func (ss *sharedSessions) get(ctx context.Context, token string) (*session, error) {
	s, err := ss.read(ctx, sha256.Sum256([]byte(token)), 0)
	if s != nil {
		s.csrf = csrfOf(token)
	}
	return s, err
}

// touch moves the idle deadline on in the store; a session gone since it was read is not an
// error (the request it served was verified; the next one finds nothing).
func (ss *sharedSessions) touch(ctx context.Context, s *session) error {
	if _, err := ss.st.Touch(ctx, s.key, ss.now(), ss.idle); err != nil {
		return fmt.Errorf("console session store: %w", err)
	}
	return nil
}

func (ss *sharedSessions) alive(ctx context.Context, s *session) (bool, error) {
	got, err := ss.read(ctx, s.key, 0)
	return got != nil, err
}

func (ss *sharedSessions) drop(ctx context.Context, s *session) error {
	if err := ss.st.Delete(ctx, s.key); err != nil {
		return fmt.Errorf("console session store: %w", err)
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
