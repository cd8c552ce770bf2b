package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

func TestParseDefaults(t *testing.T) {
	c, err := Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8080" || c.Approvals.Expiry != 15*time.Minute || c.Limits.MaxBodyBytes != 1<<20 {
		t.Errorf("defaults not applied: %+v", c)
	}
	// The embedded stores unless configured: nothing else needs to run.
	if s := c.Store; s.Ledger != StoreSQLite || s.Approvals != StoreSQLite || s.Behavior != StoreMemory || s.Nonces != StoreFile || c.Uses(StorePostgres) || c.Uses(StoreRedis) {
		t.Errorf("store defaults: %+v", s)
	}
	// The session bounds the store had before they were configurable.
	if s := c.Sessions; s.IdleLifetime != 24*time.Hour || s.MaxLabels != 64 || s.MaxSessionsPerAgent != 1000 || s.MaxAgents != 100_000 {
		t.Errorf("session defaults: %+v", s)
	}
	// Server-initiated requests are refused unless configured.
	if c.MCP.ServerRequests.SamplingAllowed() || c.MCP.ServerRequests.ElicitationAllowed() {
		t.Errorf("server requests allowed by default: %+v", c.MCP.ServerRequests)
	}
	c, err = Parse("gw.yaml", []byte("mcp:\n  server_requests:\n    sampling: allow\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.MCP.ServerRequests.SamplingAllowed() || c.MCP.ServerRequests.ElicitationAllowed() {
		t.Errorf("server_requests: %+v", c.MCP.ServerRequests)
	}
	// Log messages are relayed unless turned off.
	if c, err := Parse("empty.yaml", nil); err != nil || !c.MCP.LogsRelayed() {
		t.Errorf("relay_logs default: %v %v", c.MCP.RelayLogs, err)
	}
	if c, err := Parse("gw.yaml", []byte("mcp:\n  relay_logs: false\n")); err != nil || c.MCP.LogsRelayed() {
		t.Errorf("relay_logs: false: %v %v", c.MCP.RelayLogs, err)
	}
	// Suspicious tool definitions are held at high unless said otherwise; a level is checked.
	if c, err := Parse("empty.yaml", nil); err != nil || c.MCP.DefinitionHold() != threat.High {
		t.Errorf("definition_hold_level default: %q %v", c.MCP.DefinitionHoldLevel, err)
	}
	if c, err := Parse("gw.yaml", []byte("mcp:\n  definition_hold_level: medium\n")); err != nil || c.MCP.DefinitionHold() != threat.Medium {
		t.Errorf("definition_hold_level: medium: %v", err)
	}
	if _, err := Parse("gw.yaml", []byte("mcp:\n  definition_hold_level: severe\n")); err == nil || !strings.Contains(err.Error(), "mcp.definition_hold_level") {
		t.Errorf("definition_hold_level: severe: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // substrings the error must contain
	}{
		{"unknown key", "listen: 127.0.0.1:1\nlisten_addr: x\n", []string{"gw.yaml:2:", "listen_addr"}},
		{"unknown nested key", "limits:\n  max_body: 10\n", []string{"gw.yaml:2:", "max_body"}},
		{"wrong type", "limits:\n  max_depth: deep\n", []string{"gw.yaml:2:"}},
		{"bad listen", "listen: nowhere\n", []string{"listen:"}},
		{"field paths", "limits:\n  max_depth: 0\n  max_params: -1\n", []string{"limits.max_depth", "limits.max_params"}},
		{"bad level", "inspection:\n  result_block_level: severe\n", []string{"inspection.result_block_level"}},
		{"links without roots", "inspection:\n  resolve_links: true\n", []string{"inspection.resolve_links", "roots"}},
		{"bad request level", "inspection:\n  request_block_level: severe\n", []string{"inspection.request_block_level"}},
		{"model threshold not a probability", "inspection:\n  model:\n    high: 1.5\n", []string{"inspection.model.high"}},
		{"model threshold negative", "inspection:\n  model:\n    medium: -0.1\n", []string{"inspection.model.medium"}},
		{"model thresholds inverted", "inspection:\n  model:\n    medium: 0.9\n    high: 0.5\n", []string{"inspection.model.medium"}},
		{"tool results cannot be trusted", "llm:\n  trusted_roles: [system, tool, assistant]\n", []string{"llm.trusted_roles[1]", "third-party", "llm.trusted_roles[2]"}},
		{"checkpoint contract", "ledger:\n  checkpoint_interval: 5s\n", []string{"ledger.checkpoint_interval"}},
		{"identity validated", "identity:\n  agents:\n    - roles: [x]\n", []string{"identity"}},
		{"two documents", "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n", []string{"one YAML document"}},
		{"tool classification", "tools:\n  fetch: {}\n", []string{"tools.fetch.classification"}},
		{"shadow is the enforced set", "policies: [pol]\nshadow_policies: [cand, ./pol/]\n", []string{"shadow_policies[1]", "must not be the enforced one"}},
		{"shadow empty path", "shadow_policies: [\"\"]\n", []string{"shadow_policies[0]", "empty path"}},
		{"server request value", "mcp:\n  server_requests:\n    sampling: yes\n    elicitation: Allow\n", []string{"mcp.server_requests.sampling", "mcp.server_requests.elicitation"}},
		{"server request kind", "mcp:\n  server_requests:\n    roots: allow\n", []string{"gw.yaml:3:", "roots"}},
		{"outcome ttl too short", "limits:\n  outcome_ttl: 30s\n", []string{"limits.outcome_ttl", "1m0s..24h0m0s"}},
		{"outcome ttl too long", "limits:\n  outcome_ttl: 25h\n", []string{"limits.outcome_ttl"}},
		{"outcome ttl negative", "limits:\n  outcome_ttl: -1m\n", []string{"limits.outcome_ttl"}},
		{"outcome claims too few", "limits:\n  max_outcome_claims: 999\n", []string{"limits.max_outcome_claims", "1000..268435456"}},
		{"outcome claims too many", "limits:\n  max_outcome_claims: 268435457\n", []string{"limits.max_outcome_claims"}},
		{"outcome claims negative", "limits:\n  max_outcome_claims: -1\n", []string{"limits.max_outcome_claims"}},
		{"store kinds", "store:\n  ledger: mysql\n  nonces: postgres\n", []string{"store.ledger", "store.nonces"}},
		{"console store kind", "store:\n  console: sqlite\n", []string{"store.console", "want memory or postgres or redis"}},
		{"console store needs its connection", "store:\n  console: redis\n", []string{"store.redis.url_env"}},
		{"store secrets come from the environment", "store:\n  ledger: postgres\n  behavior: redis\n", []string{"store.postgres.dsn_env", "store.redis.url_env"}},
		{"store dsn in the file", "store:\n  postgres:\n    dsn: postgres://u:secret@db/x\n", []string{"gw.yaml:3:", "dsn"}},
		{"store schema", "store:\n  postgres:\n    schema: Portcullis-Prod\n", []string{"store.postgres.schema"}},
		// A users issuer's audience would let a token agents carry log an approver in.
		{"approvals issuer shares a users audience", approvalsIdP("portcullis-users", "audiences: [portcullis-users]"),
			[]string{"approvals.issuers[0].audiences[0]", "identity.users.issuers[0]"}},
		{"approvals issuer shares an agents audience", approvalsIdP("portcullis-users", "audiences: [portcullis]"),
			[]string{"approvals.issuers[0].audiences[0]", "identity.jwt_issuers[0]"}},
		{"approvals issuer shares the default audience", approvalsIdP("portcullis-approvals", ""),
			[]string{"approvals.issuers[0].audiences[0]", "identity.users.issuers[0]"}},
		{"approvals issuer checked like any issuer", "approvals:\n  issuers:\n    - issuer: https://login.example.com/#x\n      algorithms: [none]\n",
			[]string{"approvals.issuers[0].issuer", "approvals.issuers[0].algorithms[0]", "approvals.issuers[0]: one of jwks_url or key_files"}},
		{"approver bound to an unknown issuer", "approvals:\n  approvers:\n    - id: alice@example.com\n      issuer: https://partner.example.net/\n      scopes: [{agents: [.*], tools: [.*]}]\n",
			[]string{"approvals.approvers[0].issuer", "not one of approvals.issuers"}},
		{"approver IDs compared exactly hide nothing", "approvals:\n  approvers:\n    - id: \"alice@example.com \"\n      scopes: [{agents: [.*], tools: [.*]}]\n    - id: \"bob\\u200b\"\n      scopes: [{agents: [.*], tools: [.*]}]\n",
			[]string{"approvals.approvers[0].id", "approvals.approvers[1].id"}},
		{"approvers differing in look only", "approvals:\n  approvers:\n    - id: alice@example.com\n      scopes: [{agents: [.*], tools: [.*]}]\n    - id: \"\\uff41lice@example.com\"\n      scopes: [{agents: [.*], tools: [.*]}]\n",
			[]string{"approvals.approvers[1].id", "duplicate approver"}},
		{"unqualified approver with '#'", "approvals:\n  approvers:\n    - id: \"https://login.example.com/#alice\"\n      scopes: [{agents: [.*], tools: [.*]}]\n",
			[]string{"approvals.approvers[0].id", "'#'"}},
		{"agent as approver in other letters", "identity:\n  agents:\n    - id: ops-bot\napprovals:\n  approvers:\n    - id: OPS-BOT\n      scopes: [{agents: [.*], tools: [.*]}]\n",
			[]string{"approvals.approvers[0].id", "agents never approve"}},
		{"session bounds", "sessions:\n  idle_lifetime: 10s\n  max_labels: 0\n  max_sessions_per_agent: -1\n  max_agents: 20000000\n",
			[]string{"sessions.idle_lifetime", "sessions.max_labels", "sessions.max_sessions_per_agent", "sessions.max_agents"}},
		{"unknown session bound", "sessions:\n  max_sessions: 5\n", []string{"gw.yaml:2:", "max_sessions"}},
		{"export sink type and name", "export:\n  sinks:\n    - name: Bad/Name\n      type: kafka\n", []string{"export.sinks[0].name", "export.sinks[0].type"}},
		{"export sinks named twice", "export:\n  sinks:\n    - {name: a, type: jsonl, path: /tmp/a.jsonl}\n    - {name: a, type: jsonl, path: /tmp/a.jsonl}\n",
			[]string{"export.sinks[1].name", "duplicate sink", "export.sinks[1].path", "another sink writes"}},
		{"export jsonl needs a path", "export:\n  sinks:\n    - {name: a, type: jsonl, endpoint: http://c:4318/v1/logs}\n", []string{"export.sinks[0].path", "for type otlp"}},
		{"export otlp endpoint", "export:\n  sinks:\n    - {name: a, type: otlp, endpoint: collector:4318, max_bytes: 10MiB}\n", []string{"export.sinks[0].endpoint", "for type jsonl"}},
		{"export kinds", "export:\n  sinks:\n    - {name: a, type: otlp, endpoint: http://c/v1/logs, kinds: [decision, decisions]}\n", []string{"export.sinks[0].kinds[1]", "decisions"}},
		{"export stdout not rotated", "export:\n  sinks:\n    - {name: a, type: jsonl, path: \"-\", max_bytes: 1MiB, batch_records: 20000, poll: -1s}\n",
			[]string{"export.sinks[0].max_bytes", "export.sinks[0].batch_records", "must not be negative"}},
		{"export headers", "export:\n  sinks:\n    - {name: a, type: otlp, endpoint: http://c/v1/logs, headers_env: {Authorization: \"not a name\", Host: H}}\n",
			[]string{"export.sinks[0].headers_env.Authorization", "environment variable", "export.sinks[0].headers_env.Host"}},
		{"export unknown key", "export:\n  sinks:\n    - {name: a, type: otlp, endpoint: http://c/v1/logs, headers: {}}\n", []string{"gw.yaml:3:", "headers"}},
		{"unnamed upstream among several", "mcp:\n  upstreams:\n    - url: http://a/mcp\n    - name: b\n      url: http://b/mcp\n", []string{"mcp.upstreams[0].name"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("gw.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "gw.yaml:") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// approvalsIdP is a configuration where one IdP mints agents' tokens (audience portcullis), users'
// tokens (usersAud) and approvers' logins (approvalsAud, a YAML line, or "" for the default).
func approvalsIdP(usersAud, approvalsAud string) string {
	idp := "issuer: https://login.example.com/\n      algorithms: [RS256]\n      jwks_url: https://login.example.com/jwks\n"
	s := "identity:\n  jwt_issuers:\n    - " + idp + "      audiences: [portcullis]\n" +
		"  users:\n    issuers:\n      - issuer: https://login.example.com/\n        algorithms: [RS256]\n        jwks_url: https://login.example.com/jwks\n        audiences: [" + usersAud + "]\n" +
		"approvals:\n  issuers:\n    - " + idp
	if approvalsAud != "" {
		s += "      " + approvalsAud + "\n"
	}
	return s
}

// Approver logins from the users' own IdP are fine with an audience of their own.
func TestApprovalsIssuerDefaultAudience(t *testing.T) {
	c, err := Parse("gw.yaml", []byte(approvalsIdP("portcullis-users", "")))
	if err != nil {
		t.Fatal(err)
	}
	if is := c.Approvals.Logins.Issuers; len(is) != 1 || is[0].Issuer != "https://login.example.com/" {
		t.Errorf("approvals.issuers: %+v", is)
	}
}

// TestSoleUpstreamMayBeUnnamed: one upstream needs no name (its tools keep theirs).
func TestSoleUpstreamMayBeUnnamed(t *testing.T) {
	c, err := Parse("gw.yaml", []byte("mcp:\n  upstreams:\n    - url: http://a/mcp\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.MCP.Upstreams) != 1 || c.MCP.Upstreams[0].Name != "" {
		t.Errorf("upstreams: %+v", c.MCP.Upstreams)
	}
}

func TestLoadResolvesPathsAgainstTheFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "portcullis.yaml")
	approvals := "approvals:\n  issuers:\n    - issuer: https://login.example.com/\n      algorithms: [EdDSA]\n      key_files: [keys/idp.pem]\n"
	if err := os.WriteFile(p, []byte("data_dir: data\npolicies: [pol, /abs/pol]\nshadow_policies: [cand]\n"+approvals), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != filepath.Join(dir, "data") || c.Policies[0] != filepath.Join(dir, "pol") || c.Policies[1] != "/abs/pol" {
		t.Errorf("paths not resolved: %q %q", c.DataDir, c.Policies)
	}
	if c.ShadowPolicies[0] != filepath.Join(dir, "cand") {
		t.Errorf("shadow policy path not resolved: %q", c.ShadowPolicies)
	}
	if k := c.Approvals.Logins.Issuers[0].KeyFiles[0]; k != filepath.Join(dir, "keys", "idp.pem") {
		t.Errorf("approvals issuer key file not resolved: %q", k)
	}
}

// An export file is found beside the configuration file, like every relative path in it; "-" is
// stdout, not a file named "-".
func TestExportPathsResolve(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "portcullis.yaml")
	text := "policies: [p.yaml]\nexport:\n  sinks:\n    - {name: file, type: jsonl, path: logs/records.jsonl, kinds: [decision, approval_resolved]}\n    - {name: out, type: jsonl, path: \"-\"}\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Export.Sinks[0].Path; got != filepath.Join(dir, "logs", "records.jsonl") {
		t.Errorf("path = %q", got)
	}
	if got := c.Export.Sinks[1].Path; got != "-" {
		t.Errorf("stdout path = %q", got)
	}
}

// store.console empty follows what replicas already share: the approvals' PostgreSQL, else the
// behaviour's Redis, else memory; named, it is what it says.
func TestConsoleSessionsStore(t *testing.T) {
	for _, tc := range []struct {
		s    StoreConfig
		want string
	}{
		{StoreConfig{Approvals: StoreSQLite, Behavior: StoreMemory}, StoreMemory},
		{StoreConfig{Approvals: StorePostgres, Behavior: StoreRedis}, StorePostgres},
		{StoreConfig{Approvals: StoreSQLite, Behavior: StoreRedis}, StoreRedis},
		{StoreConfig{Approvals: StorePostgres, Behavior: StoreRedis, Console: StoreRedis}, StoreRedis},
		{StoreConfig{Approvals: StorePostgres, Console: StoreMemory}, StoreMemory},
	} {
		if got := tc.s.ConsoleSessions(); got != tc.want {
			t.Errorf("%+v: ConsoleSessions() = %s, want %s", tc.s, got, tc.want)
		}
	}
	if c := (Config{Store: StoreConfig{Console: StorePostgres}}); !c.Uses(StorePostgres) {
		t.Error("store.console: postgres does not open PostgreSQL")
	}
}

// With the console off its sessions are kept nowhere: store.console alone does not make the
// configuration require PostgreSQL's or Redis's environment variable.
func TestConsoleOffRequiresNoConsoleStore(t *testing.T) {
	for _, kind := range []string{StorePostgres, StoreRedis} {
		c := Default()
		off := false
		c.Console.Enabled = &off
		c.Store.Console = kind
		c.Store.Postgres.DSNEnv, c.Store.Redis.URLEnv = "", ""
		if err := c.Validate(); err != nil {
			t.Errorf("store.console: %s with the console off: %v", kind, err)
		}
		if c.Uses(kind) {
			t.Errorf("store.console: %s with the console off counts as using %s", kind, kind)
		}
		on := true
		c.Console.Enabled = &on
		if !c.Uses(kind) {
			t.Errorf("store.console: %s with the console on does not use %s", kind, kind)
		}
	}
}

// limits.outcome_ttl is read as a duration; absent, it is 0 (the guard's hour).
func TestOutcomeTTL(t *testing.T) {
	c, err := Parse("gw.yaml", []byte("limits:\n  outcome_ttl: 10m\n"))
	if err != nil || c.Limits.OutcomeTTL != 10*time.Minute {
		t.Fatalf("outcome_ttl: 10m: %v, %v", c, err)
	}
	if c, err := Parse("gw.yaml", []byte("limits:\n  max_outcome_claims: 2000000\n")); err != nil || c.Limits.MaxOutcomeClaims != 2_000_000 {
		t.Fatalf("max_outcome_claims: 2000000: %v", err)
	}
	if c, err := Parse("gw.yaml", []byte("listen: 127.0.0.1:1\n")); err != nil || c.Limits.OutcomeTTL != 0 {
		t.Fatalf("no outcome_ttl: %v", err)
	}
}
