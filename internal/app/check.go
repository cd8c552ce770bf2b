package app

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// ErrNoPolicy is Check's answer to a configuration whose policy paths hold no policy: such a
// gateway would deny every call while reporting itself ready.
var ErrNoPolicy = errors.New("no policy: the policy paths hold no policy, so every call would be denied")

// Summary is what a configuration loads, for the start log and `portcullis config check`.
type Summary struct {
	PolicyFiles, Policies, Rules int
	Agents                       int // declared in identity.agents
	MCPUpstreams, LLMUpstreams   int
	// Gateways are the transports serve mounts: the decision API always, MCP and LLM when they
	// have upstreams.
	Gateways []string
}

// LogAttrs are the summary as log attributes.
func (s Summary) LogAttrs() []any {
	return []any{slog.Int("policy_files", s.PolicyFiles), slog.Int("policies", s.Policies), slog.Int("rules", s.Rules),
		slog.Int("agents", s.Agents), slog.Int("mcp_upstreams", s.MCPUpstreams), slog.Int("llm_upstreams", s.LLMUpstreams),
		slog.Any("gateways", s.Gateways)}
}

func (s Summary) String() string {
	return fmt.Sprintf("%s in %s, %s, %s, %s, %s; gateways: %s",
		count(s.Policies, "policy", "policies"), count(s.PolicyFiles, "file", "files"), count(s.Rules, "rule", "rules"),
		count(s.Agents, "agent", "agents"), count(s.MCPUpstreams, "MCP upstream", "MCP upstreams"),
		count(s.LLMUpstreams, "LLM upstream", "LLM upstreams"), strings.Join(s.Gateways, ", "))
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Check loads what Open would from a validated configuration — the policy set — and counts what
// the gateway will serve, opening, creating and writing nothing: serve and the stdio wrapper call
// it before Open, so that a configuration that cannot run leaves no data directory, key or ledger
// record behind. A set without any policy is ErrNoPolicy unless allowEmpty; a shadow_policies
// candidate that does not load is an error as well.
func Check(cfg *config.Config, allowEmpty bool) (Summary, error) {
	set, err := policy.Load(cfg.Policies...)
	if err != nil {
		return Summary{}, err
	}
	if len(cfg.ShadowPolicies) > 0 {
		// The candidate must load too: Open refuses to start with one that does not.
		if _, err := policy.Load(cfg.ShadowPolicies...); err != nil {
			return Summary{}, fmt.Errorf("shadow_policies: %w", err)
		}
	}
	s := Summary{PolicyFiles: len(set.Files()), Policies: len(set.Agents()), Rules: set.RuleCount(),
		Agents: len(cfg.Identity.Agents), MCPUpstreams: len(cfg.MCP.Upstreams), LLMUpstreams: len(cfg.LLM.Upstreams),
		Gateways: []string{"decision-api"}}
	if s.MCPUpstreams > 0 {
		s.Gateways = append(s.Gateways, "mcp")
	}
	if s.LLMUpstreams > 0 {
		s.Gateways = append(s.Gateways, "llm")
	}
	if s.Policies == 0 && !allowEmpty {
		return s, fmt.Errorf("%s: %w", strings.Join(cfg.Policies, ", "), ErrNoPolicy)
	}
	return s, nil
}
