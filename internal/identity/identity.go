// Package identity authenticates the callers of Portcullis ("verify explicitly"): agents by API
// key, JWT bearer token or HTTP Message Signature (RFC 9421), and the user on whose behalf an agent
// acts, from a verified user token or — only for agents configured to be trusted with it — an
// assertion that is recorded as such.
//
// It owns Agent, User, the agent directory compiled from configuration, API keys and the KeyStore
// interface, JWT issuers and their key sets (JWKS refreshed in the background), signed-request
// verification and the NonceStore interface, and the stable error codes that reach the API and
// the ledger.
//
// It must not import HTTP servers, MCP, SQL drivers, the policy engine, the ledger or guard.
// It does use net/http types: a signed request is verified over the request itself, and JWKS
// documents are fetched with an http.Client.
package identity

import (
	"errors"
	"slices"
)

// Method says how an agent proved who it is.
type Method string

const (
	MethodAPIKey    Method = "api_key"
	MethodJWT       Method = "jwt"
	MethodSignature Method = "http_signature"
)

// Agent is an authenticated agent: who it is, what it may be, and how it proved it.
// Agents are immutable once returned; callers must not modify the slices or map.
type Agent struct {
	ID    string   `json:"id"`
	Roles []string `json:"roles,omitempty"`
	// Permissions are granted to the agent directly.
	Permissions []string `json:"permissions,omitempty"`
	// RolePermissions are the permissions each of the agent's roles grants.
	RolePermissions map[string][]string `json:"role_permissions,omitempty"`
	// Method and CredentialID say which credential authenticated this request (an API key id,
	// a JWT issuer and kid, or a signing key id) — for the ledger, never secret.
	Method            Method `json:"method"`
	CredentialID      string `json:"credential_id"`
	TrustAssertedUser bool   `json:"trust_asserted_user,omitempty"`
}

// HasRole reports whether the agent has role r.
func (a *Agent) HasRole(r string) bool { return a != nil && slices.Contains(a.Roles, r) }

// HasPermission reports whether the agent has permission p, directly or through any role.
func (a *Agent) HasPermission(p string) bool {
	if a == nil {
		return false
	}
	if slices.Contains(a.Permissions, p) {
		return true
	}
	for _, r := range a.Roles {
		if slices.Contains(a.RolePermissions[r], p) {
			return true
		}
	}
	return false
}

// HasRolePermission reports whether the agent has role r and permission p, through that role
// or directly (the policy language's `agent_role: R` with `has_permission: P`).
func (a *Agent) HasRolePermission(r, p string) bool {
	if !a.HasRole(r) {
		return false
	}
	return slices.Contains(a.Permissions, p) || slices.Contains(a.RolePermissions[r], p)
}

// User is the person on whose behalf an agent acts. A nil *User is "no invoking user": no
// permissions and no attributes.
type User struct {
	ID          string              `json:"id"`
	Permissions []string            `json:"permissions,omitempty"`
	Attributes  map[string][]string `json:"attributes,omitempty"`
	// Verified: the user came from a token whose signature, issuer, audience and lifetime were checked.
	Verified bool `json:"verified"`
	// Asserted: the user was asserted by an agent trusted to do so (never also Verified).
	Asserted bool   `json:"asserted"`
	Issuer   string `json:"issuer,omitempty"`
}

// HasPermission reports whether the user has p. A nil user has none.
func (u *User) HasPermission(p string) bool { return u != nil && slices.Contains(u.Permissions, p) }

// Attribute returns the user's attribute values (nil for a nil user or an absent attribute).
func (u *User) Attribute(name string) []string {
	if u == nil {
		return nil
	}
	return u.Attributes[name]
}

// Error is an identity failure with a stable code for the API and the ledger. The sentinels
// below are the only values; wrap them with %w to add detail and match them with errors.Is.
type Error struct {
	code, msg string
}

func (e *Error) Error() string { return e.msg }

// Code is the stable, snake_case code of the failure.
func (e *Error) Code() string { return e.code }

func newErr(code, msg string) *Error { return &Error{code: code, msg: "identity: " + msg} }

// Sentinel errors. Their codes are part of the API and the ledger format: never rename one.
var (
	ErrMissing             = newErr("credential_missing", "no credential presented")
	ErrAmbiguous           = newErr("credential_ambiguous", "more than one kind of credential presented")
	ErrMalformed           = newErr("credential_malformed", "credential is malformed")
	ErrInvalid             = newErr("credential_invalid", "credential is not valid")
	ErrExpired             = newErr("credential_expired", "credential has expired")
	ErrNotYetValid         = newErr("credential_not_yet_valid", "credential is not valid yet")
	ErrRevoked             = newErr("credential_revoked", "credential has been revoked")
	ErrWrongAudience       = newErr("credential_wrong_audience", "credential is for another audience")
	ErrLifetime            = newErr("credential_lifetime_exceeded", "credential is valid for longer than its issuer allows")
	ErrReplay              = newErr("signature_replayed", "signed request was already seen")
	ErrStale               = newErr("signature_stale", "signature created outside the accepted window")
	ErrUnknownAgent        = newErr("agent_unknown", "agent is not declared in configuration")
	ErrAgentMismatch       = newErr("agent_mismatch", "credential belongs to a different agent")
	ErrUserInvalid         = newErr("user_token_invalid", "user token is not valid")
	ErrUntrustedAssertion  = newErr("user_assertion_untrusted", "agent is not trusted to assert users")
	ErrUnavailable         = newErr("identity_unavailable", "credential could not be checked now")
	ErrKeyLimit            = newErr("api_key_limit", "agent already has the maximum number of active API keys")
	ErrKeyNotFound         = newErr("api_key_not_found", "no API key with that id")
	errUnclassifiedFailure = "identity_error"
)

// Code returns the stable code of an identity error, or "identity_error" for anything else
// (which callers must treat as a denial all the same).
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.code
	}
	return errUnclassifiedFailure
}

func asIdentity(err error, target **Error) bool { return errors.As(err, target) }

func isAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
