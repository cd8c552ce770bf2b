package identity

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"
)

// AssertedUser is a user named by an agent without a token. It is believed only from agents
// configured with trust_asserted_user, and the resulting User is marked Asserted.
type AssertedUser struct {
	ID          string              `json:"id"`
	Permissions []string            `json:"permissions,omitempty"`
	Attributes  map[string][]string `json:"attributes,omitempty"`
}

// Limits on an assertion, so that a trusted agent's bug cannot balloon a decision record.
const (
	maxAssertedItems = 256
	maxAssertedLen   = 256
)

// User resolves the invoking user for an authenticated agent: from token (verified against the
// configured user issuers), or from an assertion by a trusted agent, or nil when neither is given.
// Presenting both is ErrAmbiguous; an invalid token is ErrUserInvalid (never silently "no user":
// a caller that sent a token expects it to count, and a policy may test for its absence).
func (v *Verifier) User(ctx context.Context, agent *Agent, token string, asserted *AssertedUser) (*User, error) {
	switch {
	case agent == nil:
		return nil, fmt.Errorf("user: %w: no authenticated agent", ErrInvalid)
	case token != "" && asserted != nil:
		return nil, fmt.Errorf("user: %w: both a user token and an asserted user", ErrAmbiguous)
	case token != "":
		return v.verifyUserToken(ctx, token)
	case asserted != nil:
		if !agent.TrustAssertedUser {
			return nil, fmt.Errorf("user: agent %s: %w", agent.ID, ErrUntrustedAssertion)
		}
		if err := checkAssertion(asserted); err != nil {
			return nil, fmt.Errorf("user: %w: %v", ErrUserInvalid, err)
		}
		return &User{ID: asserted.ID, Permissions: slices.Clone(asserted.Permissions),
			Attributes: maps.Clone(asserted.Attributes), Asserted: true}, nil
	}
	return nil, nil
}

func checkAssertion(a *AssertedUser) error {
	ok := func(s string) bool { return s != "" && len(s) <= maxAssertedLen && utf8.ValidString(s) }
	if !ok(a.ID) {
		return fmt.Errorf("asserted user id is empty, too long or not UTF-8")
	}
	if len(a.Permissions) > maxAssertedItems || len(a.Attributes) > maxAssertedItems {
		return fmt.Errorf("asserted user has more than %d permissions or attributes", maxAssertedItems)
	}
	for _, p := range a.Permissions {
		if !ok(p) {
			return fmt.Errorf("asserted permission %q is empty, too long or not UTF-8", p)
		}
	}
	for k, vs := range a.Attributes {
		if !ok(k) || len(vs) > maxAssertedItems {
			return fmt.Errorf("asserted attribute %q is invalid", k)
		}
		for _, s := range vs {
			if len(s) > maxAssertedLen || !utf8.ValidString(s) {
				return fmt.Errorf("asserted attribute %q has an invalid value", k)
			}
		}
	}
	return nil
}

func (v *Verifier) verifyUserToken(ctx context.Context, token string) (*User, error) {
	iss, err := unverifiedIssuer(token)
	if err != nil {
		return nil, fmt.Errorf("user: %w: %w", ErrUserInvalid, err)
	}
	is, ok := v.userIssuers[iss]
	if !ok {
		return nil, fmt.Errorf("user: %w: issuer %q is not trusted for users", ErrUserInvalid, iss)
	}
	claims, err := is.verify(ctx, token)
	if err != nil {
		return nil, fmt.Errorf("user: %w: %w", ErrUserInvalid, err)
	}
	uc := v.c.cfg.Users
	id, _ := claims[uc.IDClaim].(string)
	if id == "" {
		return nil, fmt.Errorf("user: %w: claim %q is missing", ErrUserInvalid, uc.IDClaim)
	}
	u := &User{ID: id, Verified: true, Issuer: iss}
	perms, ok := claimStrings(claims, uc.PermissionsClaim, true)
	if !ok {
		return nil, fmt.Errorf("user: %w: claim %q is not a string or list of strings", ErrUserInvalid, uc.PermissionsClaim)
	}
	u.Permissions = perms
	for attr, claim := range uc.Attributes {
		vals, ok := claimStrings(claims, claim, false)
		if !ok {
			return nil, fmt.Errorf("user: %w: claim %q (attribute %s) is not a string or list of strings", ErrUserInvalid, claim, attr)
		}
		if len(vals) > 0 {
			if u.Attributes == nil {
				u.Attributes = map[string][]string{}
			}
			u.Attributes[attr] = vals
		}
	}
	return u, nil
}
