package guard

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-ai/portcullis/internal/identity"
)

// An outcome token binds an outcome to the allowed decision it reports on, in a way any replica
// can check without having made the decision: an HMAC-SHA256, under a key every replica shares,
// over the decision ID, the agent, the tool, when it was decided and until when it may be
// reported. The decision's answer carries it; the outcome presents it. What the token cannot
// say by itself — that this decision has not been reported already — is claimed once in the
// shared claim store (the signature-nonce store: Redis for replicas, a journal on one machine).
//
// Format: "pot1." base64url(payload) "." base64url(mac), where payload is
// uvarint(len(agent)) agent uvarint(len(tool)) tool uvarint(len(user)) user uvarint(len(session))
// session int64(issued unix ms) int64(expires unix ms),
// and mac = HMAC-SHA256(key, "portcullis outcome token v1\x00" uvarint(len(decision ID))
// decision ID payload). The decision ID is not carried: the outcome names it.

// Stable codes of an outcome refused for its token.
const (
	// CodeOutcomeToken: the outcome carries no token, or one that is malformed, forged, or made
	// for another decision.
	CodeOutcomeToken = "outcome_token_invalid"
	// CodeOutcomeTokenExpired: the token was genuine but its reporting window has closed.
	CodeOutcomeTokenExpired = "outcome_token_expired"
	// CodeUnknownDecision: the token is genuine but names another agent (the decision is not
	// this agent's), or the outcome names another tool than the one decided.
	CodeUnknownDecision = "unknown_decision"
)

// Errors of outcome tokens, wrapped with detail for the record.
var (
	ErrOutcomeToken        = errors.New("outcome token invalid")
	ErrOutcomeTokenExpired = errors.New("outcome token expired")
)

// DefaultOutcomeTTL is how long after an allowed decision its outcome may be reported.
const DefaultOutcomeTTL = time.Hour

// outcomeTokenPrefix names the format; maxOutcomeToken bounds what is decoded at all.
const (
	outcomeTokenPrefix = "pot1."
	maxOutcomeToken    = 4096
	outcomeMACContext  = "portcullis outcome token v1\x00"
	// claimPrefix keys the once-only claims in the shared nonce store. Signature nonces are
	// keyed "keyid\x00nonce" with a non-empty key ID, so a key starting with a NUL never
	// collides with one.
	claimPrefix = "\x00outcome\x00"
)

// IsOutcomeClaim reports whether a nonce-store key is an outcome claim, not a signature nonce.
func IsOutcomeClaim(key string) bool { return strings.HasPrefix(key, claimPrefix) }

// OutcomeClaims records that a decision's outcome was reported (identity.NonceStore): one
// atomic check-and-set, shared by replicas.
type OutcomeClaims interface {
	Use(ctx context.Context, key string, ttl time.Duration) (fresh bool, err error)
}

// outcomeTokens issues and checks outcome tokens.
type outcomeTokens struct {
	ttl    time.Duration
	claims OutcomeClaims
	// macs are keyed HMAC states, reused: hmac.New costs a dozen allocations per decision.
	macs sync.Pool
}

func newOutcomeTokens(key []byte, ttl time.Duration, claims OutcomeClaims, now func() time.Time) (*outcomeTokens, error) {
	if len(key) == 0 {
		// No shared key: one process only. A random key still binds each outcome to its decision.
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	} else if len(key) < 16 {
		return nil, errors.New("guard: outcome key shorter than 16 bytes")
	}
	if ttl <= 0 {
		ttl = DefaultOutcomeTTL
	}
	if claims == nil {
		claims = identity.NewMemoryClaimStore(now)
	}
	key = append([]byte(nil), key...)
	t := &outcomeTokens{ttl: ttl, claims: claims}
	t.macs.New = func() any { return &macState{h: hmac.New(sha256.New, key), in: make([]byte, 0, 512)} }
	return t, nil
}

// DeriveOutcomeKey derives the outcome-token key from key material the replicas already share
// (the ledger's hash key), so that no new secret has to be distributed, and the two uses never
// share a key.
func DeriveOutcomeKey(shared []byte) []byte {
	m := hmac.New(sha256.New, shared)
	m.Write([]byte("portcullis outcome token key v1"))
	return m.Sum(nil)
}

// macState is a keyed HMAC and the scratch space of one token, reused through a pool.
type macState struct {
	h   hash.Hash
	in  []byte // context, decision ID, payload: the MAC's input
	sum [sha256.Size]byte
}

// mac returns the token MAC of decisionID and payload, in st.sum.
func (st *macState) mac(decisionID string, payload []byte) []byte {
	in := append(st.in[:0], outcomeMACContext...)
	in = binary.AppendUvarint(in, uint64(len(decisionID)))
	in = append(in, decisionID...)
	in = append(in, payload...)
	st.in = in
	st.h.Reset()
	st.h.Write(in)
	return st.h.Sum(st.sum[:0])
}

func (t *outcomeTokens) state() *macState { return t.macs.Get().(*macState) }

// issue returns the token of an allowed decision: c's agent, tool, user and session.
func (t *outcomeTokens) issue(decisionID string, c tokenClaims, at time.Time) string {
	st := t.state()
	defer t.macs.Put(st)
	var buf [2 * (MaxToolNameLen + binary.MaxVarintLen64 + 16)]byte
	p := buf[:0]
	for _, f := range []string{c.agent, c.tool, c.user, c.session} {
		p = binary.AppendUvarint(p, uint64(len(f)))
		p = append(p, f...)
	}
	p = binary.BigEndian.AppendUint64(p, uint64(at.UnixMilli()))
	p = binary.BigEndian.AppendUint64(p, uint64(at.Add(t.ttl).UnixMilli()))
	mac := st.mac(decisionID, p)
	enc := base64.RawURLEncoding
	out := make([]byte, 0, len(outcomeTokenPrefix)+enc.EncodedLen(len(p))+1+enc.EncodedLen(len(mac)))
	out = append(out, outcomeTokenPrefix...)
	out = enc.AppendEncode(out, p)
	out = append(out, '.')
	out = enc.AppendEncode(out, mac)
	return string(out)
}

// tokenClaims is what a genuine token says.
type tokenClaims struct {
	agent, tool string
	// user and session name the session of the call: its result's labels go there.
	user, session   string
	issued, expires time.Time
}

// verify checks token's MAC for decisionID and returns what it says. It does not look at the
// clock, the agent or the claim store.
func (t *outcomeTokens) verify(decisionID, token string) (tokenClaims, error) {
	if token == "" {
		return tokenClaims{}, fmt.Errorf("%w: none presented", ErrOutcomeToken)
	}
	if len(token) > maxOutcomeToken || !strings.HasPrefix(token, outcomeTokenPrefix) {
		return tokenClaims{}, fmt.Errorf("%w: not a token", ErrOutcomeToken)
	}
	body, sig, ok := strings.Cut(token[len(outcomeTokenPrefix):], ".")
	enc := base64.RawURLEncoding
	p, perr := enc.DecodeString(body)
	got, serr := enc.DecodeString(sig)
	if !ok || perr != nil || serr != nil {
		return tokenClaims{}, fmt.Errorf("%w: not a token", ErrOutcomeToken)
	}
	st := t.state()
	defer t.macs.Put(st)
	if !hmac.Equal(got, st.mac(decisionID, p)) {
		return tokenClaims{}, fmt.Errorf("%w: not issued for decision %q", ErrOutcomeToken, decisionID)
	}
	// Genuine: the payload is ours, but is still read defensively.
	var c tokenClaims
	field := func() (string, bool) {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return "", false
		}
		s := string(p[k : k+int(n)])
		p = p[k+int(n):]
		return s, true
	}
	var okA, okT, okU, okS bool
	c.agent, okA = field()
	c.tool, okT = field()
	c.user, okU = field()
	c.session, okS = field()
	if !okA || !okT || !okU || !okS || len(p) != 16 {
		return tokenClaims{}, fmt.Errorf("%w: bad payload", ErrOutcomeToken)
	}
	c.issued = time.UnixMilli(int64(binary.BigEndian.Uint64(p[:8])))
	c.expires = time.UnixMilli(int64(binary.BigEndian.Uint64(p[8:])))
	return c, nil
}

// claim marks the decision's outcome reported, once: a second report finds it claimed.
// The claim lives until the token expires (and a minute more, for clocks a little apart).
func (t *outcomeTokens) claim(ctx context.Context, decisionID string, expires, now time.Time) (fresh bool, err error) {
	return t.claims.Use(ctx, claimPrefix+decisionID, expires.Sub(now)+time.Minute)
}
