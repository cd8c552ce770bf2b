package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/console"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/server"
)

// ApproverKeysFile holds approvers' API keys: a key store of their own, apart from the agents'.
const ApproverKeysFile = "approver-keys.json"

// approvers authenticates the people who approve. An approver proves who they are with an
// approver API key or with a token from an approvals issuer (approvals.issuers); either way their
// ID must be declared in approvals.approvers, which also gives their scopes. Agent credentials
// are refused: agents' keys are not in the approvers' key store, and an agent's ID cannot be
// declared an approver (config validation). Users' tokens are refused too: they are verified only
// against the users' issuers, which the approvals API never consults, and an approvals issuer
// may not accept an audience the decision path accepts (config validation, and again at login).
type approvers struct {
	keys identity.KeyStore
	rt   *atomic.Pointer[runtimeState] // the logins and the declared approvers in force
}

var _ server.ApproverAuth = (*approvers)(nil)

// Approver authenticates the approver behind r. IDs are compared exactly — the declared ID with
// the approver key's owner, or with the login token's id claim — and a token logs in only the
// approver bound to its issuer: a partner IdP's token naming a staff approver's ID, in whatever
// letters, is nobody.
func (a *approvers) Approver(ctx context.Context, r *http.Request) (approval.Approver, error) {
	if len(r.Header.Values("Authorization")) > 1 {
		// Ambiguous: a proxy in front may have checked the other one. Refused, never chosen.
		return approval.Approver{}, fmt.Errorf("%w: %w: two Authorization headers", server.ErrNotApprover, identity.ErrAmbiguous)
	}
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	cred = strings.TrimSpace(cred)
	if !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return approval.Approver{}, server.ErrNotApprover
	}
	ap, _, err := a.authenticate(ctx, cred)
	if err != nil {
		return approval.Approver{}, err
	}
	return approverOf(ap), nil
}

// approverOf is the approval engine's view of a declared approver. An auditor has no scopes:
// it approves nothing, whatever its configuration says.
func approverOf(ap config.ApproverConfig) approval.Approver {
	scopes := ap.Scopes
	if ap.RoleOf() == config.RoleAuditor {
		scopes = nil
	}
	return approval.Approver{ID: approval.QualifiedID(ap.Issuer, ap.ID), Name: ap.ID, Kind: approval.Human, Scopes: scopes}
}

// ConsolePrincipal signs a person in to the console with the same credentials, checked the same
// way, as the approvals API: an approver key or an approvals issuer's token.
func (a *approvers) ConsolePrincipal(ctx context.Context, cred string) (console.Principal, error) {
	if cred == "" {
		return console.Principal{}, server.ErrNotApprover
	}
	p, _, err := a.ConsoleGrant(ctx, cred)
	return p, err
}

var _ console.GrantAuthenticator = (*approvers)(nil)

// ConsoleGrant signs a person in as ConsolePrincipal does, and returns what a session kept in a
// shared store holds instead of the credential: the approver key's ID, or the issuer and
// subject of the token with its expiry. Neither gives anyone the credential back.
func (a *approvers) ConsoleGrant(ctx context.Context, cred string) (console.Principal, console.Grant, error) {
	if cred == "" {
		return console.Principal{}, console.Grant{}, server.ErrNotApprover
	}
	ap, g, err := a.authenticate(ctx, cred)
	if err != nil {
		return console.Principal{}, console.Grant{}, err
	}
	return console.Principal{Approver: approverOf(ap), Role: console.Role(ap.RoleOf())}, g, nil
}

// ConsoleGrantPrincipal checks a kept grant again at now, as authenticate checks the credential
// it came from: the key is still in the approvers' key store, active, and owned by a declared
// approver; the token has not expired, its issuer is still an approvals issuer, and its subject
// is still declared under that issuer.
func (a *approvers) ConsoleGrantPrincipal(ctx context.Context, g console.Grant, now time.Time) (console.Principal, error) {
	set := a.rt.Load()
	if set == nil {
		return console.Principal{}, errors.Join(server.ErrNotApprover, errors.New("approvers are not loaded"))
	}
	var ap config.ApproverConfig
	var ok bool
	switch {
	case g.KeyID != "":
		rec, err := a.keys.Lookup(ctx, g.KeyID)
		if err != nil {
			// A key a replica signed the person in with is missing here (this replica's key file
			// is another copy, or not yet updated) or the store cannot be read: this replica cannot
			// check the session, which is not the same as the key being revoked — a revocation
			// keeps the record, marked. The request is refused here; the shared session is left
			// to the replicas that hold the key.
			return console.Principal{}, fmt.Errorf("%w: %w: api key %s: %w", server.ErrNotApprover, console.ErrNotHere, g.KeyID, err)
		}
		if !rec.Active(now) {
			return console.Principal{}, fmt.Errorf("%w: api key %s is %s", server.ErrNotApprover, g.KeyID, rec.Status(now))
		}
		if ap, ok = set.approvers[rec.AgentID]; !ok {
			return console.Principal{}, fmt.Errorf("%w: %w: key owner %q", server.ErrNotApprover, server.ErrUndeclaredApprover, rec.AgentID)
		}
	case g.Issuer != "" && g.Subject != "":
		if !g.Until.IsZero() && !now.Before(g.Until) {
			return console.Principal{}, fmt.Errorf("%w: the sign-in token expired at %v", server.ErrNotApprover, g.Until)
		}
		if set.logins == nil || !set.logins.Trusts(g.Issuer) {
			return console.Principal{}, fmt.Errorf("%w: issuer %q is no longer an approvals issuer", server.ErrNotApprover, g.Issuer)
		}
		if ap, ok = set.approvers[g.Subject]; !ok || ap.Issuer != g.Issuer {
			return console.Principal{}, fmt.Errorf("%w: %w: %q", server.ErrNotApprover, server.ErrUndeclaredApprover, approval.QualifiedID(g.Issuer, g.Subject))
		}
	default:
		return console.Principal{}, fmt.Errorf("%w: an empty grant", server.ErrNotApprover)
	}
	return console.Principal{Approver: approverOf(ap), Role: console.Role(ap.RoleOf())}, nil
}

// authenticate returns the declared approver cred proves to be, and the grant that names the
// same sign-in without the credential.
func (a *approvers) authenticate(ctx context.Context, cred string) (config.ApproverConfig, console.Grant, error) {
	set := a.rt.Load()
	if set == nil {
		return config.ApproverConfig{}, console.Grant{}, errors.Join(server.ErrNotApprover, errors.New("approvers are not loaded"))
	}
	var ap config.ApproverConfig
	var g console.Grant
	if strings.HasPrefix(cred, identity.APIKeyPrefix) {
		rec, err := identity.CheckAPIKey(ctx, a.keys, cred, time.Now())
		if err != nil {
			return config.ApproverConfig{}, g, fmt.Errorf("%w: %v", server.ErrNotApprover, err)
		}
		// The key store's owner field holds the approver's ID here.
		var ok bool
		if ap, ok = set.approvers[rec.AgentID]; !ok {
			return config.ApproverConfig{}, g, fmt.Errorf("%w: %w: key owner %q", server.ErrNotApprover, server.ErrUndeclaredApprover, rec.AgentID)
		}
		g.KeyID = rec.ID
	} else {
		login, err := set.logins.Login(ctx, cred)
		if err != nil {
			return config.ApproverConfig{}, g, fmt.Errorf("%w: %w", server.ErrNotApprover, err)
		}
		var ok bool
		ap, ok = set.approvers[login.Subject]
		if !ok || ap.Issuer != login.Issuer {
			return config.ApproverConfig{}, g, fmt.Errorf("%w: %w: %q", server.ErrNotApprover, server.ErrUndeclaredApprover, approval.QualifiedID(login.Issuer, login.Subject))
		}
		g = console.Grant{Issuer: login.Issuer, Subject: login.Subject, Until: login.Expires}
	}
	return ap, g, nil
}

// ConsoleOIDCPrincipal signs in a person the console's OIDC client verified. Their entry in
// approvals.approvers — the same ID under the console's issuer — gives their scopes, and their
// role unless console.oidc.roles mapped one from the token; someone neither declared nor mapped
// is nobody. Agents never pass: an agent's ID cannot be declared an approver, and the console's
// client ID is never an audience the decision path accepts (config validation, and the client
// refuses a token naming one).
func (a *approvers) ConsoleOIDCPrincipal(_ context.Context, id console.OIDCIdentity) (console.Principal, error) {
	set := a.rt.Load()
	if set == nil {
		return console.Principal{}, errors.Join(server.ErrNotApprover, errors.New("approvers are not loaded"))
	}
	oc := set.cfg.Console.OIDC
	if !oc.On() || id.Issuer != oc.Issuer {
		return console.Principal{}, fmt.Errorf("%w: issuer %q is not console.oidc.issuer", server.ErrNotApprover, id.Issuer)
	}
	for _, ag := range set.cfg.Identity.Agents {
		if approval.SamePerson(ag.ID, id.Subject) {
			// An account named like an agent: whoever holds it, it does not approve that
			// agent's calls, nor anyone's.
			return console.Principal{}, fmt.Errorf("%w: %q names an agent", server.ErrNotApprover, id.Subject)
		}
	}
	ap, declared := set.approvers[id.Subject]
	if declared && ap.Issuer != id.Issuer {
		declared = false // the same name from another issuer, or an approver-key holder: not this person
	}
	role := config.RoleApprover
	switch {
	case id.Role != "":
		role = string(id.Role)
	case declared:
		role = ap.RoleOf()
	default:
		return console.Principal{}, fmt.Errorf("%w: %w: %q", server.ErrNotApprover, server.ErrUndeclaredApprover, approval.QualifiedID(id.Issuer, id.Subject))
	}
	p := approval.Approver{ID: approval.QualifiedID(id.Issuer, id.Subject), Name: id.Subject, Kind: approval.Human}
	if declared && role != config.RoleAuditor {
		p.Scopes = ap.Scopes
	}
	return console.Principal{Approver: p, Role: console.Role(role)}, nil
}
