package inspect

import (
	"context"
	"errors"
	"net/netip"
	"path"
	"strings"
)

// Finding kinds reported by the detectors in this file set. They are a stable contract: policies
// name them in `findings:` conditions, so a kind is never renamed once shipped.
//
//	sql_injection          SQL injection (libinjection tokenizer plus SQL-structure checks)
//	nosql_injection        MongoDB-style operator injection ($ne, $where, [$gt]=, ...)
//	path_traversal         ../ in any encoding, null bytes, UNC, file://, sensitive system files,
//	                       absolute paths outside the configured roots
//	command_injection      shell metacharacter chains, substitutions, reverse shells
//	ssrf                   URLs to loopback/private/link-local/metadata addresses, dangerous schemes
//	pii.email              e-mail address
//	pii.phone              telephone number
//	pii.credit_card        payment card number (Luhn-valid)
//	pii.us_ssn             US social security number (SSA-valid ranges)
//	pii.iban               IBAN (country length and mod-97 valid)
//	pii.ip_address         IPv4/IPv6 address
//	secret.aws_access_key  AWS access key ID (AKIA/ASIA...)
//	secret.github_token    GitHub token (ghp_, gho_, github_pat_ ...)
//	secret.slack_token     Slack token or webhook URL
//	secret.private_key     PEM private key header
//	secret.jwt             JSON Web Token
//	secret.gcp             Google Cloud API key or service-account key
//	secret.stripe          Stripe secret/restricted key
//	secret.openai          OpenAI API key
//	secret.anthropic       Anthropic API key
//	secret.generic         key=value assignment of a high-entropy credential
const (
	KindSQLInjection     = "sql_injection"
	KindNoSQLInjection   = "nosql_injection"
	KindPathTraversal    = "path_traversal"
	KindCommandInjection = "command_injection"
	KindSSRF             = "ssrf"
)

// DetectorConfig is the configuration of the built-in detectors. The zero value is usable: no roots
// (absolute paths are judged only by what they point at), no DNS resolution, default shell-tool
// patterns.
type DetectorConfig struct {
	// PathRoots are the directories file tools may touch. When set, an absolute path outside all of
	// them is a path_traversal finding of medium severity.
	PathRoots []string
	// ResolveLinks makes the path detector follow links: a path argument is resolved on the
	// gateway's own file system (relative paths against the first root), and one that leads
	// outside every root, or to a credential or system file, through a link is a high
	// path_traversal finding, as is one whose links cannot be followed. Only meaningful when the
	// gateway shares the tool server's file system (a stdio server on the same host), and only
	// with PathRoots. Off by default: it puts file-system look-ups on the decision path.
	ResolveLinks bool
	// Resolver resolves host names for the SSRF detector. Nil means no resolution (no network).
	Resolver Resolver
	// ShellTools are path.Match patterns over lower-cased tool names that run shell commands; their
	// arguments are judged more strictly. Nil means DefaultShellTools.
	ShellTools []string
}

// Resolver resolves a host name to addresses. The SSRF detector uses it to catch names that point
// at internal addresses; implementations must honour ctx's deadline.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ErrNoSuchHost is returned by StaticResolver for names it does not know.
var ErrNoSuchHost = errors.New("inspect: no such host")

// DefaultShellTools are the tool-name patterns treated as shell-like when DetectorConfig.ShellTools
// is nil.
var DefaultShellTools = []string{
	"*shell*", "*bash*", "exec", "*_exec", "exec_*", "*execute_command*", "*command*", "*terminal*", "*cmd*",
	"run", "run_*", "*powershell*", "*subprocess*", "sh", "*.sh", "*ssh*", "*console*",
}

// builtinDetectors returns every detector of this package configured by cfg, in a fixed order.
func builtinDetectors(cfg DetectorConfig) []Detector {
	shell := cfg.ShellTools
	if shell == nil {
		shell = DefaultShellTools
	}
	return []Detector{
		sqlDetector{},
		newPathDetectorLinks(cfg.PathRoots, cfg.ResolveLinks),
		nosqlDetector{},
		newCommandDetector(shell),
		ssrfDetector{resolver: cfg.Resolver},
		piiDetector{},
		secretDetector{},
	}
}

// toolMatcher matches lower-cased tool names against path.Match patterns. Patterns of the common
// shapes ("x", "x*", "*x", "*x*") are compiled to plain string tests, since it runs for every value.
type toolMatcher struct {
	exact, prefix, suffix, contains []string
	glob                            []string
	containsSet                     *litSet // contains as one automaton: asked for every value
	containsAll                     bool
}

func newToolMatcher(patterns []string) toolMatcher {
	var m toolMatcher
	for _, p := range patterns {
		p = strings.ToLower(p)
		core := strings.Trim(p, "*")
		switch {
		case cs21.in(core):
			m.glob = append(m.glob, p)
		case strings.HasPrefix(p, "*") && strings.HasSuffix(p, "*") && len(p) > 1:
			m.contains = append(m.contains, core)
		case strings.HasPrefix(p, "*"):
			m.suffix = append(m.suffix, core)
		case strings.HasSuffix(p, "*"):
			m.prefix = append(m.prefix, core)
		default:
			m.exact = append(m.exact, p)
		}
	}
	var lits []string
	for _, x := range m.contains {
		if x == "" {
			m.containsAll = true // "**" matches every name
		} else {
			lits = append(lits, x)
		}
	}
	if len(lits) > 0 {
		m.containsSet = newLitSet(lits...)
	}
	return m
}

// match reports whether tool matches (case-insensitively).
func (m *toolMatcher) match(tool string) bool {
	t := tool
	for i := 0; i < len(t); i++ {
		if c := t[i]; c >= 'A' && c <= 'Z' {
			t = strings.ToLower(tool)
			break
		}
	}
	for _, x := range m.exact {
		if t == x {
			return true
		}
	}
	for _, x := range m.prefix {
		if strings.HasPrefix(t, x) {
			return true
		}
	}
	for _, x := range m.suffix {
		if strings.HasSuffix(t, x) {
			return true
		}
	}
	if m.containsAll || m.containsSet != nil && m.containsSet.contains(t) {
		return true
	}
	for _, g := range m.glob {
		if ok, _ := path.Match(g, t); ok {
			return true
		}
	}
	return false
}
