package identity

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config is the identity part of the gateway configuration. The config package decodes it
// strictly (unknown keys are errors) and calls Validate; New compiles it.
type Config struct {
	// Roles maps a role name to the permissions it grants.
	Roles map[string]RoleConfig `yaml:"roles" json:"roles"`
	// Agents are the only agents that can authenticate: a valid credential for an undeclared
	// agent is refused.
	Agents []AgentConfig `yaml:"agents" json:"agents"`
	// JWTIssuers are trusted to mint bearer tokens for agents.
	JWTIssuers []IssuerConfig `yaml:"jwt_issuers" json:"jwt_issuers"`
	// Signatures tunes signed-request verification.
	Signatures SignatureConfig `yaml:"signatures" json:"signatures"`
	// Users says how invoking users are verified (the organisation's identity provider).
	Users UserConfig `yaml:"users" json:"users"`
}

// RoleConfig is one role.
type RoleConfig struct {
	Permissions []string `yaml:"permissions" json:"permissions"`
}

// AgentConfig declares one agent.
type AgentConfig struct {
	ID          string   `yaml:"id" json:"id"`
	Roles       []string `yaml:"roles" json:"roles"`
	Permissions []string `yaml:"permissions" json:"permissions"`
	// TrustAssertedUser lets this agent name the invoking user without a user token. Such users
	// are marked Asserted. Only for orchestrators that authenticate users themselves.
	TrustAssertedUser bool `yaml:"trust_asserted_user" json:"trust_asserted_user"`
	// SigningKeys are the Ed25519 public keys this agent signs requests with (RFC 9421).
	SigningKeys []SigningKeyConfig `yaml:"signing_keys" json:"signing_keys"`
}

// SigningKeyConfig is one request-signing key. Key ids are global: one id names one agent's key.
type SigningKeyConfig struct {
	ID string `yaml:"id" json:"id"`
	// PublicKey is the raw 32-byte Ed25519 key in base64 (standard or URL alphabet), or a PEM
	// "PUBLIC KEY" block.
	PublicKey string `yaml:"public_key" json:"public_key"`
	// NotAfter, when set, retires the key at that time (rotation: add the new key, then retire).
	NotAfter time.Time `yaml:"not_after" json:"not_after"`
}

// SignatureConfig bounds signed requests.
type SignatureConfig struct {
	// MaxAge is how old a signature's "created" may be; default 5m, at most 1h. Nonces are
	// remembered for MaxAge+MaxSkew, so this also bounds the replay store.
	MaxAge time.Duration `yaml:"max_age" json:"max_age"`
	// MaxSkew is how far in the future "created" may be (clock skew); default 30s, at most 5m.
	MaxSkew time.Duration `yaml:"max_skew" json:"max_skew"`
	// Components that every signature must cover; default @method @authority @path @query content-digest.
	Components []string `yaml:"components" json:"components"`
}

// IssuerConfig is one trusted JWT issuer.
type IssuerConfig struct {
	Issuer string `yaml:"issuer" json:"issuer"`
	// Audiences: the token's aud must contain at least one of them. Required.
	Audiences []string `yaml:"audiences" json:"audiences"`
	// Algorithms is the allow-list (e.g. [RS256] or [EdDSA]). Required; "none" is refused, and
	// HMAC algorithms cannot be mixed with public-key ones (that mix is what HS/RS confusion needs).
	Algorithms []string `yaml:"algorithms" json:"algorithms"`
	// JWKSURL is fetched at start and refreshed in the background.
	JWKSURL string `yaml:"jwks_url" json:"jwks_url"`
	// KeyFiles are PEM public keys, JWK or JWKS files (an HMAC secret only as a JWK of kty "oct").
	KeyFiles []string `yaml:"key_files" json:"key_files"`
	// RefreshInterval of the JWKS; default 10m, within [1m, 24h].
	RefreshInterval time.Duration `yaml:"refresh_interval" json:"refresh_interval"`
	// MinRefreshInterval rate-limits refreshes triggered by an unknown kid; default 30s, within [1s, RefreshInterval].
	MinRefreshInterval time.Duration `yaml:"min_refresh_interval" json:"min_refresh_interval"`
	// Leeway for exp/nbf/iat; default 30s, at most 5m.
	Leeway time.Duration `yaml:"leeway" json:"leeway"`
	// AgentClaim names the claim holding the agent id (agent issuers); default "sub".
	AgentClaim string `yaml:"agent_claim" json:"agent_claim"`
	// Agents, when not empty, are the only agents this issuer may speak for.
	Agents []string `yaml:"agents" json:"agents"`
	// MaxLifetime bounds how long a token may be valid: exp - iat, or exp - now when the token has
	// no iat; default 24h, within [1m, 8760h]. A leaked token minted to live for years is refused.
	MaxLifetime time.Duration `yaml:"max_lifetime" json:"max_lifetime"`
}

// UserConfig maps user tokens to users.
type UserConfig struct {
	Issuers []IssuerConfig `yaml:"issuers" json:"issuers"`
	// IDClaim names the user id claim; default "sub".
	IDClaim string `yaml:"id_claim" json:"id_claim"`
	// PermissionsClaim holds the user's permissions: a list of strings or one space-separated
	// string (OAuth "scope" style); default "permissions".
	PermissionsClaim string `yaml:"permissions_claim" json:"permissions_claim"`
	// Attributes maps an attribute name (region, clearance, ...) to the claim that carries it
	// (a string or a list of strings). Claims not named here are not attributes.
	Attributes map[string]string `yaml:"attributes" json:"attributes"`
}

// Defaults and bounds.
const (
	DefaultSignatureMaxAge    = 5 * time.Minute
	DefaultSignatureMaxSkew   = 30 * time.Second
	DefaultRefreshInterval    = 10 * time.Minute
	DefaultMinRefreshInterval = 30 * time.Second
	DefaultLeeway             = 30 * time.Second
	DefaultMaxLifetime        = 24 * time.Hour
	maxLeeway                 = 5 * time.Minute
	minMaxLifetime            = time.Minute
	maxMaxLifetime            = 365 * 24 * time.Hour
)

var (
	idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$`)
	knownAlgs = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

// fieldErrors collects "path: message" problems so that all of them are reported at once.
type fieldErrors []string

func (f *fieldErrors) add(path, format string, args ...any) {
	*f = append(*f, path+": "+fmt.Sprintf(format, args...))
}

func (f fieldErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	return errors.New(strings.Join(f, "\n"))
}

// withDefaults returns a copy of c with defaults filled in.
func (c Config) withDefaults() Config {
	if c.Signatures.MaxAge == 0 {
		c.Signatures.MaxAge = DefaultSignatureMaxAge
	}
	if c.Signatures.MaxSkew == 0 {
		c.Signatures.MaxSkew = DefaultSignatureMaxSkew
	}
	if c.Signatures.Components == nil {
		c.Signatures.Components = []string{"@method", "@authority", "@path", "@query", "content-digest"}
	}
	fill := func(is []IssuerConfig) []IssuerConfig {
		out := slices.Clone(is)
		for i := range out {
			if out[i].RefreshInterval == 0 {
				out[i].RefreshInterval = DefaultRefreshInterval
			}
			if out[i].MinRefreshInterval == 0 {
				out[i].MinRefreshInterval = min(DefaultMinRefreshInterval, out[i].RefreshInterval)
			}
			if out[i].Leeway == 0 {
				out[i].Leeway = DefaultLeeway
			}
			if out[i].AgentClaim == "" {
				out[i].AgentClaim = "sub"
			}
			if out[i].MaxLifetime == 0 {
				out[i].MaxLifetime = DefaultMaxLifetime
			}
		}
		return out
	}
	c.JWTIssuers = fill(c.JWTIssuers)
	c.Users.Issuers = fill(c.Users.Issuers)
	if c.Users.IDClaim == "" {
		c.Users.IDClaim = "sub"
	}
	if c.Users.PermissionsClaim == "" {
		c.Users.PermissionsClaim = "permissions"
	}
	return c
}

// Validate reports every problem in c, one per line, each prefixed with its field path
// (e.g. "agents[2].signing_keys[0].public_key: ..."). Defaults are applied first.
func (c Config) Validate() error {
	_, err := c.compile()
	return err
}

// compiled is the immutable form of Config that verification reads.
type compiled struct {
	cfg     Config
	agents  map[string]*Agent // prototype agents without Method/CredentialID
	sigKeys map[string]sigKey
}

type sigKey struct {
	agentID  string
	pub      ed25519.PublicKey
	notAfter time.Time
}

func (c Config) compile() (*compiled, error) {
	c = c.withDefaults()
	var fe fieldErrors
	out := &compiled{cfg: c, agents: map[string]*Agent{}, sigKeys: map[string]sigKey{}}
	rolePerms := map[string][]string{}
	for name, r := range c.Roles {
		if !idPattern.MatchString(name) {
			fe.add("roles."+name, "role name must match %s", idPattern)
		}
		rolePerms[name] = slices.Clone(r.Permissions)
	}
	for i, a := range c.Agents {
		p := fmt.Sprintf("agents[%d]", i)
		if !idPattern.MatchString(a.ID) {
			fe.add(p+".id", "agent id %q must match %s", a.ID, idPattern)
		}
		if _, dup := out.agents[a.ID]; dup {
			fe.add(p+".id", "agent %q is declared twice", a.ID)
		}
		ag := &Agent{ID: a.ID, Roles: slices.Clone(a.Roles), Permissions: slices.Clone(a.Permissions),
			TrustAssertedUser: a.TrustAssertedUser, RolePermissions: map[string][]string{}}
		for j, r := range a.Roles {
			perms, ok := rolePerms[r]
			if !ok {
				fe.add(fmt.Sprintf("%s.roles[%d]", p, j), "role %q is not defined under roles", r)
			}
			ag.RolePermissions[r] = perms
		}
		out.agents[a.ID] = ag
		for j, k := range a.SigningKeys {
			kp := fmt.Sprintf("%s.signing_keys[%d]", p, j)
			if !idPattern.MatchString(k.ID) {
				fe.add(kp+".id", "key id %q must match %s", k.ID, idPattern)
			}
			if prev, dup := out.sigKeys[k.ID]; dup {
				fe.add(kp+".id", "key id %q is already used by agent %q", k.ID, prev.agentID)
			}
			pub, err := ParseEd25519PublicKey(k.PublicKey)
			if err != nil {
				fe.add(kp+".public_key", "%v", err)
			}
			out.sigKeys[k.ID] = sigKey{agentID: a.ID, pub: pub, notAfter: k.NotAfter}
		}
	}
	if c.Signatures.MaxAge < 0 || c.Signatures.MaxAge > time.Hour {
		fe.add("signatures.max_age", "must be within (0, 1h], got %s", c.Signatures.MaxAge)
	}
	if c.Signatures.MaxSkew < 0 || c.Signatures.MaxSkew > 5*time.Minute {
		fe.add("signatures.max_skew", "must be within [0, 5m], got %s", c.Signatures.MaxSkew)
	}
	for _, must := range []string{"@method", "@path"} {
		if !slices.Contains(c.Signatures.Components, must) {
			fe.add("signatures.components", "must include %q", must)
		}
	}
	validateIssuers(&fe, "jwt_issuers", c.JWTIssuers, out.agents)
	validateIssuers(&fe, "users.issuers", c.Users.Issuers, nil)
	for attr, claim := range c.Users.Attributes {
		if attr == "" || claim == "" {
			fe.add("users.attributes", "attribute %q → claim %q: both must be non-empty", attr, claim)
		}
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	return out, nil
}

func validateIssuers(fe *fieldErrors, path string, is []IssuerConfig, agents map[string]*Agent) {
	seen := map[string]bool{}
	for i, c := range is {
		p := fmt.Sprintf("%s[%d]", path, i)
		if c.Issuer == "" {
			fe.add(p+".issuer", "required")
		}
		if seen[c.Issuer] {
			fe.add(p+".issuer", "issuer %q is configured twice", c.Issuer)
		}
		seen[c.Issuer] = true
		if len(c.Audiences) == 0 {
			fe.add(p+".audiences", "at least one audience is required (a token for another service must not work here)")
		}
		if len(c.Algorithms) == 0 {
			fe.add(p+".algorithms", "an algorithm allow-list is required")
		}
		var hmac, public bool
		for j, a := range c.Algorithms {
			if !slices.Contains(knownAlgs, a) {
				fe.add(fmt.Sprintf("%s.algorithms[%d]", p, j), "algorithm %q is not allowed (one of %s)", a, strings.Join(knownAlgs, ", "))
			}
			if strings.HasPrefix(a, "HS") {
				hmac = true
			} else {
				public = true
			}
		}
		if hmac && public {
			fe.add(p+".algorithms", "HMAC (HS*) and public-key algorithms cannot be mixed in one issuer")
		}
		if hmac && c.JWKSURL != "" {
			fe.add(p+".jwks_url", "HMAC secrets are never fetched from a URL; use key_files")
		}
		if c.JWKSURL == "" && len(c.KeyFiles) == 0 {
			fe.add(p, "one of jwks_url or key_files is required")
		}
		if c.JWKSURL != "" {
			if err := checkJWKSURL(c.JWKSURL); err != nil {
				fe.add(p+".jwks_url", "%v", err)
			}
		}
		if c.RefreshInterval < time.Minute || c.RefreshInterval > 24*time.Hour {
			fe.add(p+".refresh_interval", "must be within [1m, 24h], got %s", c.RefreshInterval)
		}
		if c.MinRefreshInterval < time.Second || c.MinRefreshInterval > c.RefreshInterval {
			fe.add(p+".min_refresh_interval", "must be within [1s, refresh_interval], got %s", c.MinRefreshInterval)
		}
		if c.Leeway < 0 || c.Leeway > maxLeeway {
			fe.add(p+".leeway", "must be within [0, %s], got %s", maxLeeway, c.Leeway)
		}
		if c.MaxLifetime < minMaxLifetime || c.MaxLifetime > maxMaxLifetime {
			fe.add(p+".max_lifetime", "must be within [%s, %s], got %s", minMaxLifetime, maxMaxLifetime, c.MaxLifetime)
		}
		if agents != nil {
			for j, a := range c.Agents {
				if _, ok := agents[a]; !ok {
					fe.add(fmt.Sprintf("%s.agents[%d]", p, j), "agent %q is not declared", a)
				}
			}
		}
	}
}

// ParseEd25519PublicKey reads an Ed25519 public key given as base64 of the raw 32 bytes
// (standard or URL alphabet, padded or not) or as a PEM "PUBLIC KEY" block.
func ParseEd25519PublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		b, _ := pem.Decode([]byte(s))
		if b == nil || b.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("not a PEM PUBLIC KEY block")
		}
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key is %T, want Ed25519", k)
		}
		return pub, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("public key is %d bytes, want %d", len(b), ed25519.PublicKeySize)
			}
			return ed25519.PublicKey(b), nil
		}
	}
	return nil, fmt.Errorf("public key is neither base64 nor PEM")
}

// checkJWKSURL accepts an absolute https URL, or plain http only to a loopback host (127.0.0.0/8,
// ::1 or the name "localhost" itself), and never a URL with userinfo. The URL is parsed, not
// prefix-matched: "http://127.0.0.1@evil.example/" and "http://localhost.evil.example/" start
// like loopback URLs and name a remote host.
func checkJWKSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if u.Opaque != "" || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL with a host", s)
	}
	if u.User != nil {
		return fmt.Errorf("must not carry userinfo (user@host)")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if !loopbackHost(u.Hostname()) {
			return fmt.Errorf("must be https (plain http only to a loopback host: 127.0.0.0/8, [::1] or localhost), got host %q", u.Hostname())
		}
		return nil
	}
	return fmt.Errorf("must be https (plain http only to a loopback host), got scheme %q", u.Scheme)
}

// loopbackHost reports whether host (without port) is a loopback address or exactly "localhost".
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
