package identity

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
)

// CheckAPIKey verifies key against ks (hash, constant-time comparison, expiry, revocation) and
// returns its record. It serves credentials that are not agents' — approvers' keys live in a key
// store of their own, so an agent's key can never pass as an approver's.
func CheckAPIKey(ctx context.Context, ks KeyStore, key string, now time.Time) (KeyRecord, error) {
	return checkAPIKey(ctx, ks, key, now)
}

// DefaultApproverAudience is the audience an approvals issuer requires when its entry names none.
// It differs from every audience the decision path uses by default, so that an IdP configured
// for both logs approvers in only with tokens minted for approving.
const DefaultApproverAudience = "portcullis-approvals"

// ApproverLoginConfig is how approvers log in with their identity provider's token. It is apart
// from UserConfig on purpose: a user's token is handed to agents (an orchestrator forwards it as
// user_token), so a token that can authenticate a user on the decision path must never log in an
// approver — or an agent that carried a person's token could approve its own calls.
type ApproverLoginConfig struct {
	// Issuers trusted to log approvers in. Audiences default to [DefaultApproverAudience] and
	// must not share an audience with an identity.users.issuers or identity.jwt_issuers entry of
	// the same issuer.
	Issuers []IssuerConfig `yaml:"issuers" json:"issuers"`
	// IDClaim names the claim holding the approver's ID; default "sub".
	IDClaim string `yaml:"id_claim" json:"id_claim"`
}

func (c ApproverLoginConfig) withDefaults() ApproverLoginConfig {
	is := slices.Clone(c.Issuers)
	for i := range is {
		if len(is[i].Audiences) == 0 {
			is[i].Audiences = []string{DefaultApproverAudience}
		}
	}
	c.Issuers = Config{Users: UserConfig{Issuers: is}}.withDefaults().Users.Issuers
	if c.IDClaim == "" {
		c.IDClaim = "sub"
	}
	return c
}

// ValidateApproverLogins reports every problem of c, one per line, each prefixed with its field
// path under path (e.g. "approvals.issuers[0].audiences: ..."). decision is the identity
// configuration of the decision path: an approvals issuer may not accept an audience that one of
// its users or agents issuers of the same issuer URL accepts, so that no token can pass both.
func ValidateApproverLogins(path string, c ApproverLoginConfig, decision Config) error {
	_, err := compileApproverLogins(path, c, decision)
	return err
}

func compileApproverLogins(path string, c ApproverLoginConfig, decision Config) (ApproverLoginConfig, error) {
	c = c.withDefaults()
	decision = decision.withDefaults()
	var fe fieldErrors
	validateIssuers(&fe, path+".issuers", c.Issuers, nil)
	for i, is := range c.Issuers {
		p := fmt.Sprintf("%s.issuers[%d]", path, i)
		// OpenID issuer identifiers carry no fragment; the approver's principal uses "#" to
		// qualify their ID with the issuer, so it must not appear in one.
		if strings.Contains(is.Issuer, "#") {
			fe.add(p+".issuer", "must not contain '#'")
		}
		for _, d := range decisionAudiences(decision, is.Issuer) {
			for j, aud := range is.Audiences {
				if slices.Contains(d.auds, aud) {
					fe.add(fmt.Sprintf("%s.audiences[%d]", p, j), "audience %q is also accepted by identity.%s for issuer %q: a token handed to agents would log in an approver; give approver logins an audience of their own (default %q)",
						aud, d.path, is.Issuer, DefaultApproverAudience)
				}
			}
		}
	}
	if err := fe.err(); err != nil {
		return c, err
	}
	return c, nil
}

// DecisionAudiences lists every audience the decision path accepts for tokens of issuer iss, as
// a user token or as an agent's token. A sign-in for people (the console's OIDC client) must
// neither be configured with one of them nor accept a token that names one.
func DecisionAudiences(decision Config, iss string) []string {
	var out []string
	for _, d := range decisionAudiences(decision.withDefaults(), iss) {
		out = append(out, d.auds...)
	}
	return out
}

type decisionAud struct {
	path string
	auds []string
}

// decisionAudiences lists the audiences the decision path accepts for tokens of issuer iss: as a
// user token (users.issuers) and as an agent's token (jwt_issuers).
func decisionAudiences(decision Config, iss string) []decisionAud {
	var out []decisionAud
	for _, g := range []struct {
		path string
		is   []IssuerConfig
	}{{"users.issuers", decision.Users.Issuers}, {"jwt_issuers", decision.JWTIssuers}} {
		for i, is := range g.is {
			if is.Issuer == iss {
				out = append(out, decisionAud{fmt.Sprintf("%s[%d]", g.path, i), is.Audiences})
			}
		}
	}
	return out
}

// ApproverLogins verifies approvers' tokens against the approvals issuers — and only them. It is
// immutable apart from JWKS refresh; on a configuration reload build a new one and swap.
type ApproverLogins struct {
	idClaim string
	issuers map[string]*issuer
	// refused holds, per issuer, the audiences the decision path accepts. A token whose aud names
	// one of them is refused even if it also names an approvals audience: a token with both
	// audiences would otherwise be a user's token and an approver's at once.
	refused map[string][]string
}

// ApproverLogin is a person an approvals issuer vouched for.
type ApproverLogin struct {
	// Issuer is the iss of the verified token; Subject the approver's ID as that issuer states it.
	Issuer, Subject string
	// Expires is the token's exp; zero when it has none.
	Expires time.Time
}

// Trusts reports whether iss is an approvals issuer: a sign-in one of them vouched for is checked
// again against it (a session kept without the token ends when its issuer is removed).
func (l *ApproverLogins) Trusts(iss string) bool {
	_, ok := l.issuers[iss]
	return ok
}

// NewApproverLogins compiles c; decision is the identity configuration of the decision path
// (see ValidateApproverLogins). Call Start to begin refreshing JWKS key sets.
func NewApproverLogins(c ApproverLoginConfig, decision Config, opt Options) (*ApproverLogins, error) {
	c, err := compileApproverLogins("approvals", c, decision)
	if err != nil {
		return nil, fmt.Errorf("approver logins:\n%w", err)
	}
	decision = decision.withDefaults()
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: fetchTimeout, CheckRedirect: noDowngrade}
	}
	l := &ApproverLogins{idClaim: c.IDClaim, issuers: map[string]*issuer{}, refused: map[string][]string{}}
	for _, ic := range c.Issuers {
		is, err := newIssuer(ic, opt.HTTPClient, opt.Now, opt.Logger)
		if err != nil {
			return nil, err
		}
		l.issuers[ic.Issuer] = is
		for _, d := range decisionAudiences(decision, ic.Issuer) {
			l.refused[ic.Issuer] = append(l.refused[ic.Issuer], d.auds...)
		}
	}
	return l, nil
}

// Start refreshes every JWKS in the background until ctx is cancelled; the returned wait blocks,
// once ctx is cancelled, until every refresh has ended.
func (l *ApproverLogins) Start(ctx context.Context) (wait func()) {
	return startRefresh(ctx, l.issuers)
}

// Login verifies token against the approvals issuers and returns who it names. A token from an
// issuer that is not an approvals issuer, for another audience, or whose audience the decision
// path also accepts, is refused.
func (l *ApproverLogins) Login(ctx context.Context, token string) (ApproverLogin, error) {
	if strings.ContainsRune(token, ' ') {
		return ApproverLogin{}, fmt.Errorf("approver login: %w: unsupported scheme", ErrMalformed)
	}
	iss, err := unverifiedIssuer(token)
	if err != nil {
		return ApproverLogin{}, fmt.Errorf("approver login: %w", err)
	}
	is, ok := l.issuers[iss]
	if !ok {
		return ApproverLogin{}, fmt.Errorf("approver login: %w: issuer %q is not trusted for approvers", ErrInvalid, iss)
	}
	claims, err := is.verify(ctx, token)
	if err != nil {
		return ApproverLogin{}, fmt.Errorf("approver login: %w", err)
	}
	auds, err := claims.GetAudience()
	if err != nil {
		return ApproverLogin{}, fmt.Errorf("approver login: %w: aud: %v", ErrInvalid, err)
	}
	for _, a := range auds {
		if slices.Contains(l.refused[iss], a) {
			return ApproverLogin{}, fmt.Errorf("approver login: %w: audience %q is a decision-path audience (a user's or an agent's token)", ErrWrongAudience, a)
		}
	}
	sub, _ := claims[l.idClaim].(string)
	if sub == "" {
		return ApproverLogin{}, fmt.Errorf("approver login: %w: claim %q is missing or not a string", ErrInvalid, l.idClaim)
	}
	login := ApproverLogin{Issuer: iss, Subject: sub}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		login.Expires = exp.Time
	}
	return login, nil
}
