package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"github.com/portcullis-ai/portcullis/internal/identity"
)

// validateConsoleOIDC checks console.oidc. Its client ID may not be an audience the decision
// path accepts from the same issuer: a token minted for agents or for users' calls must never
// sign a person in to approve.
func (c *Config) validateConsoleOIDC() []problem {
	o := c.Console.OIDC
	var out []problem
	add := func(path, format string, args ...any) {
		out = append(out, problem{"console.oidc." + path, fmt.Sprintf(format, args...)})
	}
	if !secureURL(o.Issuer) {
		add("issuer", "want an https URL (http only on a loopback address), got %q", o.Issuer)
	} else if strings.Contains(o.Issuer, "#") {
		add("issuer", "must not contain '#'")
	}
	switch {
	case o.ClientID == "":
		add("client_id", "required")
	case slices.Contains(identity.DecisionAudiences(c.Identity, o.Issuer), o.ClientID):
		add("client_id", "%q is an audience identity accepts from %q for agents' or users' tokens: a token handed to an agent would sign a person in to the console; register the console as a client of its own", o.ClientID, o.Issuer)
	}
	if len(o.Name) > 64 || strings.ContainsFunc(o.Name, unicode.IsControl) {
		add("name", "want at most 64 characters without control characters")
	}
	if o.ClientSecretEnv != "" && o.ClientSecretFile != "" {
		add("client_secret_env", "set client_secret_env or client_secret_file, not both")
	}
	if !secureURL(o.RedirectURL) {
		add("redirect_url", "want an https URL (http only on a loopback address), got %q", o.RedirectURL)
	} else if u, _ := url.Parse(o.RedirectURL); u.Path != c.Console.Path+"/oidc/callback" {
		add("redirect_url", "want the console's callback, a URL whose path is %s/oidc/callback, got %q", c.Console.Path, o.RedirectURL)
	}
	if len(o.Scopes) > 0 && !slices.Contains(o.Scopes, "openid") {
		add("scopes", "must include openid")
	}
	switch o.SubjectClaim {
	case "", "sub", "email":
	default:
		add("subject_claim", "want sub or email, got %q", o.SubjectClaim)
	}
	for role := range o.Roles {
		switch role {
		case RoleAdmin, RoleAuditor, RoleApprover:
		default:
			add("roles."+role, "want admin, auditor or approver")
		}
	}
	if len(o.Roles) > 0 && o.RoleClaim == "" {
		add("role_claim", "required with roles: the claim whose values they map")
	}
	return out
}

// secureURL: an absolute https URL, or http to a loopback address (a provider on the same host).
func secureURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		return host == "localhost" || ip != nil && ip.IsLoopback()
	}
	return false
}
