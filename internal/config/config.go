// Package config is the gateway's configuration: defaults, then a strict decode (unknown keys are
// errors), then validation whose messages name the field path. It holds plain data; app turns it
// into running parts. It must not import transports, stores or the guard.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Config is the whole gateway configuration (portcullis.yaml).
type Config struct {
	// Listen is the HTTP API's address.
	Listen string `yaml:"listen"`
	// DataDir holds the SQLite database, the ledger keys and the API key file. Relative paths in
	// this file are resolved against the file's own directory.
	DataDir string `yaml:"data_dir"`
	// Policies are policy files or directories (every *.yaml / *.yml in them); hot-reloaded.
	Policies []string `yaml:"policies"`
	// ShadowPolicies are a candidate policy set's files or directories, loaded and hot-reloaded
	// beside the enforced one: every call is also decided under them and a differing verdict is
	// recorded, never enforced (shadow rollout; `portcullis policy promote` swaps them in).
	ShadowPolicies []string `yaml:"shadow_policies"`
	// Identity declares roles, agents, JWT issuers, signed-request bounds and user tokens.
	Identity identity.Config `yaml:"identity"`
	// Tools declares per-tool facts the policy reads: the classification of the data a tool touches.
	Tools map[string]ToolConfig `yaml:"tools"`

	Inspection InspectionConfig `yaml:"inspection"`
	Approvals  ApprovalsConfig  `yaml:"approvals"`
	Ledger     LedgerConfig     `yaml:"ledger"`
	Limits     LimitsConfig     `yaml:"limits"`
	Log        LogConfig        `yaml:"log"`
	// Tracing exports OpenTelemetry traces (one span per decision) when an endpoint is set.
	Tracing TracingConfig `yaml:"tracing"`
	// LLM configures the LLM gateway (OpenAI- and Anthropic-compatible endpoints on the same
	// listener); absent upstreams leave those endpoints unmounted.
	LLM LLMConfig `yaml:"llm"`
	// MCP puts upstream MCP servers behind the gateway at /mcp (see docs/mcp.md).
	MCP MCPConfig `yaml:"mcp"`
	// Store says where state lives: the embedded stores by default, PostgreSQL and Redis when
	// several replicas act as one gateway.
	Store StoreConfig `yaml:"store"`
	// Console is the web console served beside the API (docs/console.md).
	Console ConsoleConfig `yaml:"console"`
	// Sessions bounds what the gateway remembers per session (docs/sessions.md); kept where
	// store.behavior says.
	Sessions SessionsConfig `yaml:"sessions"`
	// Export streams ledger records to files, stdout and OTLP log receivers (docs/export.md).
	Export ExportConfig `yaml:"export"`
	// Alerts are the rules watching the ledger for threats (docs/console.md#alerts); on by
	// default.
	Alerts AlertsConfig `yaml:"alerts"`
}

// AlertsConfig sets the alert engine: which rules run and their thresholds. Zero values take
// the defaults in docs/configuration.md.
type AlertsConfig struct {
	// Enabled runs the alert rules; default true.
	Enabled *bool `yaml:"enabled"`
	// Disabled names rules that raise nothing (docs/console.md#alerts lists them).
	Disabled []string `yaml:"disabled"`
	// Window is the counting window of the spike and error-rate rules; default 5m.
	Window time.Duration `yaml:"window"`
	// BaselineWindows: an agent's baseline is its mean count over this many windows before the
	// current one; default 12.
	BaselineWindows int `yaml:"baseline_windows"`
	// SpikeFactor and SpikeFloor: a window's denials or findings are a spike over factor ×
	// baseline and at least the floor; defaults 3 and 10.
	SpikeFactor float64 `yaml:"spike_factor"`
	SpikeFloor  int     `yaml:"spike_floor"`
	// NewToolAfter: a tool new to an agent alerts once the agent made this many calls, and a
	// parameter new to a tool once the agent called the tool this many times; default 20.
	NewToolAfter int `yaml:"new_tool_after"`
	// ErrorRate and ErrorMin: the share of failed tool calls in a window, and the fewest
	// failures, that alert; defaults 0.5 and 10.
	ErrorRate float64 `yaml:"error_rate"`
	ErrorMin  int     `yaml:"error_min"`
	// BacklogPending and BacklogAge: pending approval requests, and the age of the oldest, that
	// alert; defaults 20 and 1h.
	BacklogPending int           `yaml:"backlog_pending"`
	BacklogAge     time.Duration `yaml:"backlog_age"`
	// Cooldown: an open alert swallows its repeats until this long passes without one; default 15m.
	Cooldown time.Duration `yaml:"cooldown"`
	// MaxPerWindow caps the alerts raised per window; the rest fold into one alert_flood;
	// default 20.
	MaxPerWindow int `yaml:"max_per_window"`
	// Webhook delivers each alert through approvals.webhook (signed, Slack-compatible) when
	// that is configured; default true.
	Webhook *bool `yaml:"webhook"`
}

// On reports whether the alert rules run.
func (a AlertsConfig) On() bool { return a.Enabled == nil || *a.Enabled }

// WebhookOn reports whether alerts go to the approvals webhook (when one is configured).
func (a AlertsConfig) WebhookOn() bool { return a.Webhook == nil || *a.Webhook }

// ExportConfig lists the export sinks; each follows the ledger on its own.
type ExportConfig struct {
	Sinks []ExportSink `yaml:"sinks"`
}

// ExportSink is one destination of ledger records (docs/export.md).
type ExportSink struct {
	// Name identifies the sink: its state file (DATA/export/NAME.seq) and its metrics label.
	Name string `yaml:"name"`
	// Type is jsonl (a file, or stdout with path "-") or otlp (OTLP/HTTP logs, protobuf).
	Type string `yaml:"type"`
	// Kinds are the record kinds sent; default [decision].
	Kinds []string `yaml:"kinds"`
	// Path (jsonl) is the file appended to, mode 0600, or "-" for stdout.
	Path string `yaml:"path"`
	// MaxBytes (jsonl file) rotates the file before it would grow past this size; 0: never.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxFiles (jsonl file) is how many rotated files are kept (PATH.1 … PATH.N); default 5.
	MaxFiles int `yaml:"max_files"`
	// Endpoint (otlp) is the receiver's logs URL, e.g. http://127.0.0.1:4318/v1/logs.
	Endpoint string `yaml:"endpoint"`
	// ServiceName (otlp) is the service.name resource attribute; default "portcullis".
	ServiceName string `yaml:"service_name"`
	// HeadersEnv (otlp) are request headers whose values come from the environment, for
	// receivers that take a credential: {Authorization: OTLP_AUTH}.
	HeadersEnv map[string]string `yaml:"headers_env"`
	// BatchRecords bounds the records read and sent at once; default 512.
	BatchRecords int `yaml:"batch_records"`
	// MaxLagRecords bounds how far a failing sink may fall behind; past it the oldest records
	// are skipped and counted in portcullis_export_dropped_total. Default 100000.
	MaxLagRecords int `yaml:"max_lag_records"`
	// Poll is how often the ledger is read for new records; default 1s.
	Poll time.Duration `yaml:"poll"`
}

// SessionsConfig bounds the session store (docs/sessions.md#storage-bounds-and-failures).
type SessionsConfig struct {
	// IdleLifetime: a session with no call for this long ends, with its labels. Default 24h.
	IdleLifetime time.Duration `yaml:"idle_lifetime"`
	// MaxLabels per session; a result that would add one more is withheld. Default 64.
	MaxLabels int `yaml:"max_labels"`
	// MaxSessionsPerAgent: past it the least recently used session is evicted, its labels
	// joining every session of that agent and user. Default 1000.
	MaxSessionsPerAgent int `yaml:"max_sessions_per_agent"`
	// MaxAgents with sessions (the embedded store); past it results are withheld until
	// sessions end. Default 100000.
	MaxAgents int `yaml:"max_agents"`
}

// ConsoleConfig configures the web console: the approvals queue and the audit explorer.
type ConsoleConfig struct {
	// Enabled serves the console; default true. Off, its path answers 404.
	Enabled *bool `yaml:"enabled"`
	// Path is where the console is mounted; default /console.
	Path string `yaml:"path"`
	// SessionTTL bounds a console session from sign-in; default 8h.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// IdleTimeout ends a session unused this long; default 30m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// OIDC, when its issuer is set, signs people in through their identity provider
	// (authorization code with PKCE) beside approver keys.
	OIDC ConsoleOIDCConfig `yaml:"oidc"`
}

// ConsoleOIDCConfig is the console's OpenID Connect client.
type ConsoleOIDCConfig struct {
	// Issuer is the provider's issuer URL (its discovery document is at
	// Issuer/.well-known/openid-configuration).
	Issuer string `yaml:"issuer"`
	// Name is the provider as the sign-in button names it; default the issuer's host.
	Name string `yaml:"name"`
	// ClientID is the console's client at the provider: the audience its ID tokens must name.
	// It may not be an audience the decision path accepts from the same issuer.
	ClientID string `yaml:"client_id"`
	// ClientSecretEnv or ClientSecretFile holds the client secret (neither: a public client,
	// protected by PKCE alone).
	ClientSecretEnv  string `yaml:"client_secret_env"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// RedirectURL is where the provider sends the browser back: the console's URL followed by
	// /oidc/callback, e.g. https://gateway.example.com/console/oidc/callback.
	RedirectURL string `yaml:"redirect_url"`
	// Scopes asked for; default openid, email, profile.
	Scopes []string `yaml:"scopes"`
	// SubjectClaim names the person: sub (the default) or email (then email_verified must be true).
	SubjectClaim string `yaml:"subject_claim"`
	// RoleClaim is the claim (a string or a list of strings, e.g. groups) that Roles map from.
	RoleClaim string `yaml:"role_claim"`
	// Roles maps console roles (admin, auditor, approver) to values of RoleClaim; the strongest
	// role matched wins. Empty: the person's role is their approvals.approvers entry's.
	Roles map[string][]string `yaml:"roles"`
}

// On reports whether OIDC sign-in is configured.
func (o ConsoleOIDCConfig) On() bool { return o.Issuer != "" }

// ConsoleOn reports whether the console is served.
func (c *Config) ConsoleOn() bool { return c.Console.Enabled == nil || *c.Console.Enabled }

// Console roles (approvals.approvers[].role).
const (
	RoleApprover = "approver"
	RoleAuditor  = "auditor"
	RoleAdmin    = "admin"
)

// Store kinds.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
	StoreMemory   = "memory"
	StoreRedis    = "redis"
	// StoreFile: a journal of files in the data directory (signature nonces).
	StoreFile = "file"
)

// StoreConfig selects the store of each kind of state. Replicas that act as one gateway share
// all four: the ledger and approvals on PostgreSQL, behaviour and nonces on Redis.
type StoreConfig struct {
	// Ledger: sqlite (data_dir/ledger.db, the default) or postgres.
	Ledger string `yaml:"ledger"`
	// Approvals: sqlite (data_dir/approvals.db, the default) or postgres.
	Approvals string `yaml:"approvals"`
	// Behavior (call windows and baselines): memory (the default) or redis.
	Behavior string `yaml:"behavior"`
	// Nonces of signed requests (replay protection): file (a journal in data_dir/nonces/, the
	// default: they survive a restart at the cost of one short write per signed request), sqlite
	// (data_dir/nonces.db, at about 200 µs of CPU per signed request), memory (forgotten on restart: a request signed before it
	// can be replayed once after it, within its signature window) or redis.
	Nonces string `yaml:"nonces"`
	// Console keeps the web console's sign-in sessions: memory (each replica its own, and a
	// restart signs everyone out), postgres or redis (every replica reads them, and they outlive
	// a restart). Empty, the default: postgres when approvals are on PostgreSQL, else redis when
	// behaviour is on Redis, else memory — see ConsoleSessions.
	Console string `yaml:"console"`

	Postgres PostgresConfig `yaml:"postgres"`
	Redis    RedisConfig    `yaml:"redis"`
}

// Uses reports whether any kind of state is kept in the named store: the services a gateway
// opens at start and requires to be ready. The console's sessions count only while the console
// is served — a service named for a feature that is off must not stop the gateway starting.
func (c *Config) Uses(kind string) bool {
	return c.Store.uses(kind, c.ConsoleOn())
}

// uses is Uses on the store section alone; console says whether the console is served.
func (s StoreConfig) uses(kind string, console bool) bool {
	return s.Ledger == kind || s.Approvals == kind || s.Behavior == kind || s.Nonces == kind ||
		(console && s.ConsoleSessions() == kind)
}

// ConsoleSessions is where the console's sessions live: store.console, or when it is empty the
// shared store replicas already use — PostgreSQL with the approvals the console acts on, else
// Redis with behaviour — or memory without one.
func (s StoreConfig) ConsoleSessions() string {
	switch {
	case s.Console != "":
		return s.Console
	case s.Approvals == StorePostgres:
		return StorePostgres
	case s.Behavior == StoreRedis:
		return StoreRedis
	}
	return StoreMemory
}

// PostgresConfig is the connection to PostgreSQL. The connection string, which may hold a
// password, comes from the environment.
type PostgresConfig struct {
	// DSNEnv names the environment variable holding the connection string
	// (postgres://user:password@host:5432/db?sslmode=verify-full, or key=value form).
	DSNEnv string `yaml:"dsn_env"`
	// Schema holds the tables, created if missing; empty: the connection's search_path.
	Schema string `yaml:"schema"`
	// MaxConns bounds the connection pool (default 8; the approvals' LISTEN connection is
	// taken out of the pool and not counted).
	MaxConns int `yaml:"max_conns"`
}

// RedisConfig is the connection to Redis. The URL, which may hold a password, comes from the
// environment.
type RedisConfig struct {
	// URLEnv names the environment variable holding the URL (redis://[user:password@]host:6379/db,
	// rediss:// for TLS).
	URLEnv string `yaml:"url_env"`
	// Prefix starts every key (default "portcullis:"); replicas of one gateway share it.
	Prefix string `yaml:"prefix"`
}

// TracingConfig configures OpenTelemetry tracing over OTLP/HTTP.
type TracingConfig struct {
	// Endpoint is the collector's OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces.
	// Empty: no tracing.
	Endpoint string `yaml:"endpoint"`
	// ServiceName names this gateway in traces; default "portcullis".
	ServiceName string `yaml:"service_name"`
	// SampleRatio of decisions traced, in [0, 1]; default 1.
	SampleRatio *float64 `yaml:"sample_ratio"`
}

// LLMConfig configures the LLM gateway.
type LLMConfig struct {
	// Upstreams by wire format: chat_completions, responses, messages.
	Upstreams map[string]LLMUpstream `yaml:"upstreams"`
	// Timeout of a whole non-streamed call, and of a stream until its headers; default 10m.
	Timeout time.Duration `yaml:"timeout"`
	// StreamIdleTimeout is the longest silence inside a stream; default 5m.
	StreamIdleTimeout time.Duration `yaml:"stream_idle_timeout"`
	// MaxRequestBytes bounds a model request; default 32 MiB.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// BlockedResult is what a tool result blocked by inspection does: "refuse" (default) refuses
	// the model call; "replace" sends the model a notice in its place.
	BlockedResult string `yaml:"blocked_result"`
	// TrustedRoles are the conversation roles whose text the operator writes (the application's
	// system prompt, developer messages, Responses instructions): they are not an injection channel,
	// so prompt-injection and other attack findings there do not block the call; secrets are
	// still redacted or refused. Default [system, developer]; [] trusts none. Tool results and
	// attached documents can never be trusted.
	TrustedRoles *[]string `yaml:"trusted_roles"`
}

// LLMUpstream is one provider endpoint. The provider key comes from the environment and never
// reaches an agent.
type LLMUpstream struct {
	BaseURL   string            `yaml:"base_url"`
	APIKeyEnv string            `yaml:"api_key_env"`
	Headers   map[string]string `yaml:"headers"`
	// HeadersEnv are headers whose values come from the environment, for providers that take
	// their key in a header of their own (Azure api-key, Gemini x-goog-api-key).
	HeadersEnv map[string]string `yaml:"headers_env"`
}

// MCPConfig configures the MCP gateway.
type MCPConfig struct {
	// Upstreams are the MCP servers behind /mcp; their tools are named "<name>__<tool>". A sole
	// upstream may leave its name empty: its tools and prompts then keep their own names, as
	// behind the stdio wrapper.
	Upstreams []MCPUpstream `yaml:"upstreams"`
	// ApprovalWait is how long a CONSTRAIN tools/call is held for a human before the agent is
	// told it is pending (default 10s; at most approvals.max_wait).
	ApprovalWait time.Duration `yaml:"approval_wait"`
	// CallTimeout bounds one forwarded call (default 60s).
	CallTimeout time.Duration `yaml:"call_timeout"`
	// SessionIdleTimeout closes a Streamable HTTP session that sent no request for this long
	// (default 30m): clients that never end their sessions would otherwise hold them, and the
	// memory they use, for as long as the gateway runs.
	SessionIdleTimeout time.Duration `yaml:"session_idle_timeout"`
	// ResourceURL is this gateway's public /mcp URL, announced in the protected-resource metadata.
	ResourceURL string `yaml:"resource_url"`
	// ServerRequests says which requests an upstream may send to the agent (default: none).
	ServerRequests MCPServerRequests `yaml:"server_requests"`
	// RelayLogs passes upstreams' log messages to the agent that asked for them with
	// logging/setLevel, when a line can be attributed to one agent and user, each line inspected
	// like a tool's result (default true; see docs/mcp.md).
	RelayLogs *bool `yaml:"relay_logs"`
	// DefinitionHoldLevel holds a tool whose definition inspects at or above it (or at or above
	// inspection.result_block_level, when that is lower) until an operator approves that exact
	// definition as an approval request (default high; none: such a definition is blocked at
	// the result block level, with no approval; see docs/mcp.md).
	DefinitionHoldLevel string `yaml:"definition_hold_level"`
}

// DefinitionHold is mcp.definition_hold_level as a level (validated).
func (m MCPConfig) DefinitionHold() threat.Level {
	l, _ := threat.ParseLevel(m.DefinitionHoldLevel)
	return l
}

// LogsRelayed reports whether upstream log messages are relayed (mcp.relay_logs, default true).
func (m MCPConfig) LogsRelayed() bool { return m.RelayLogs == nil || *m.RelayLogs }

// MCPServerRequests configures server-initiated requests, each "deny" (the default: the gateway
// does not even offer the capability upstream) or "allow" (forwarded to the agent when exactly one
// agent session is attached, each one decided by the policy; see docs/mcp.md).
type MCPServerRequests struct {
	// Sampling: sampling/createMessage, an upstream asking the agent's model for a completion.
	Sampling string `yaml:"sampling"`
	// Elicitation: elicitation/create (form mode), an upstream asking the agent's user for input.
	Elicitation string `yaml:"elicitation"`
}

// SamplingAllowed and ElicitationAllowed report whether the kind was set to "allow" (validated).
func (s MCPServerRequests) SamplingAllowed() bool    { return s.Sampling == "allow" }
func (s MCPServerRequests) ElicitationAllowed() bool { return s.Elicitation == "allow" }

// MCPUpstream is one MCP server: a command run as a stdio child, or a Streamable HTTP URL.
type MCPUpstream struct {
	Name    string            `yaml:"name"`
	Command string            `yaml:"command"`
	Args    []string          `yaml:"args"`
	Env     map[string]string `yaml:"env"`
	URL     string            `yaml:"url"`
	// Headers are sent with every request to a remote upstream, by header name; each value
	// comes from the environment or a file (re-read when it changes), never from the agent.
	Headers map[string]HeaderValue `yaml:"headers"`
	// OAuth gets the remote upstream's access token with the OAuth 2.0 client credentials grant.
	OAuth *MCPOAuth `yaml:"oauth"`
}

// ToolConfig is what configuration says about one tool.
type ToolConfig struct {
	Classification string `yaml:"classification"`
}

// InspectionConfig tunes the inspection engine.
type InspectionConfig struct {
	// Roots are the directories path arguments may name.
	Roots []string `yaml:"roots"`
	// ShellTools are tool name patterns whose arguments a shell runs.
	ShellTools []string `yaml:"shell_tools"`
	// AllowedHosts may appear in links and images without counting as exfiltration.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// ResolveHosts lets the SSRF detector resolve host names (DNS) to catch names that point at
	// internal addresses. Off by default: it puts a DNS lookup on the decision path.
	ResolveHosts bool `yaml:"resolve_hosts"`
	// ResolveLinks lets the path detector follow links on the gateway's file system, so that a
	// path inside Roots that leads outside them through a link is caught. Only for tool servers
	// that share the gateway's file system (stdio servers it starts); requires Roots. Off by
	// default: it puts file-system look-ups on the decision path.
	ResolveLinks bool `yaml:"resolve_links"`
	// ResultBlockLevel: a tool result at or above this level is blocked (response direction).
	ResultBlockLevel string `yaml:"result_block_level"`
	// RequestBlockLevel: a call whose parameters inspect at or above this level is denied
	// whatever the policy says (request direction); "none": inspection only informs the policy.
	RequestBlockLevel string `yaml:"request_block_level"`
	// RedactResults: secrets and PII found in results are replaced before the agent sees them.
	RedactResults *bool `yaml:"redact_results"`
	// Model tunes the learned prompt-injection classifier.
	Model InspectionModelConfig `yaml:"model"`
	// TimeBudget is the wall-clock guard of one inspection (0: inspect.DefaultTimeBudget, 30s). The
	// verdict-deciding caps are counted in the input; a scan the guard stops is reported as
	// inspection_timeout.
	TimeBudget time.Duration `yaml:"time_budget"`
}

// InspectionModelConfig tunes the learned prompt-injection classifier (docs/detection.md).
type InspectionModelConfig struct {
	// Enabled runs the classifier beside the rules (default true).
	Enabled *bool `yaml:"enabled"`
	// Medium and High are probability thresholds in (0, 1) replacing the model's calibrated ones
	// (0: keep the model's own). Medium must not exceed High when both are set.
	Medium float64 `yaml:"medium"`
	High   float64 `yaml:"high"`
}

// ModelEnabled reports whether the classifier runs.
func (m InspectionModelConfig) ModelEnabled() bool { return m.Enabled == nil || *m.Enabled }

// ApprovalsConfig configures the CONSTRAIN queue.
type ApprovalsConfig struct {
	// Expiry is how long a request stays pending; default 15m.
	Expiry time.Duration `yaml:"expiry"`
	// MaxWait bounds how long an API caller may long-poll a pending request; default 60s.
	MaxWait time.Duration `yaml:"max_wait"`
	// Logins are the identity providers whose tokens log approvers in (approvals.issuers,
	// approvals.id_claim): never the users' issuers, whose tokens agents carry.
	Logins identity.ApproverLoginConfig `yaml:",inline"`
	// Approvers are the people who may approve, each scoped to agents and tools. They
	// authenticate with an approver API key (`portcullis approvals keys create`) or a token
	// from an approvals issuer whose id claim is their ID.
	Approvers []ApproverConfig `yaml:"approvers"`
	// Webhook, when URL is set, is told of every new pending request.
	Webhook WebhookConfig `yaml:"webhook"`
	// MaxPendingPerAgent caps the requests one agent may have pending at once (default 100): a
	// call over the cap is denied (too_many_pending_approvals) instead of queued, so that an agent
	// cannot bury approvers under requests.
	MaxPendingPerAgent int `yaml:"max_pending_per_agent"`
}

// ApproverConfig declares one approver.
type ApproverConfig struct {
	// ID is the person's ID, compared exactly: the owner of their approver keys, and with Issuer
	// the value of the id claim in their login tokens.
	ID string `yaml:"id"`
	// Issuer, when set, is the approvals issuer (approvals.issuers[].issuer) whose tokens log
	// this approver in; a token from any other issuer naming the same ID does not. Empty: approver
	// keys only. The approver is recorded as "issuer#id" (approval.QualifiedID).
	Issuer string           `yaml:"issuer"`
	Scopes []approval.Scope `yaml:"scopes"`
	// Role is what the person may do: approver (default: approve within Scopes; in the console,
	// the queue and the ledger records within Scopes), auditor (read the whole ledger in the
	// console; approves nothing, so declares no scopes), admin (the whole ledger, and approve
	// within Scopes).
	Role string `yaml:"role"`
}

// RoleOf is the approver's role, approver when unset.
func (a ApproverConfig) RoleOf() string {
	if a.Role == "" {
		return RoleApprover
	}
	return a.Role
}

// WebhookConfig configures approval notifications (Slack-compatible JSON, HMAC-signed).
type WebhookConfig struct {
	URL string `yaml:"url"`
	// SecretEnv names the environment variable holding the HMAC secret (kept out of the file).
	SecretEnv string `yaml:"secret_env"`
	// ConsoleURL, when set, links each notification to the request.
	ConsoleURL string `yaml:"console_url"`
}

// LedgerConfig configures the audit ledger.
type LedgerConfig struct {
	// SensitiveParams are parameter names always redacted (in addition to detected secrets).
	SensitiveParams []string `yaml:"sensitive_params"`
	// CheckpointInterval and CheckpointRecords: a signed checkpoint at least this often.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	CheckpointRecords  int           `yaml:"checkpoint_records"`
	// ResultDurability is when a tool result's record must be on disk: "sync" (the default:
	// before the result is released) or "relaxed" (written to the embedded store's log before
	// release, on disk within 200 ms; a process crash loses nothing, a power loss at most that).
	// Decisions are always on disk before the call is forwarded.
	ResultDurability string `yaml:"result_durability"`
	// Retention archives and prunes the oldest records while the gateway runs (off unless
	// max_age or max_records is set).
	Retention RetentionConfig `yaml:"retention"`
}

// RetentionConfig says which records the gateway archives to files and prunes from the live
// ledger: those older than MaxAge and those beyond the newest MaxRecords, cut at a signed
// checkpoint. Archives verify on their own (`portcullis audit verify --archive`).
type RetentionConfig struct {
	MaxAge     time.Duration `yaml:"max_age"`
	MaxRecords int           `yaml:"max_records"`
	// Dir holds the archive files (default: DATA/archive).
	Dir string `yaml:"dir"`
	// Interval is how often the gateway checks (default 1h).
	Interval time.Duration `yaml:"interval"`
	// SegmentRecords bounds the records in one archive file (default 100,000).
	SegmentRecords int `yaml:"segment_records"`
}

// Enabled reports whether retention archives anything.
func (r RetentionConfig) Enabled() bool { return r.MaxAge > 0 || r.MaxRecords > 0 }

// LimitsConfig bounds requests; each limit answers with a clear 4xx.
type LimitsConfig struct {
	MaxBodyBytes           int64 `yaml:"max_body_bytes"`
	MaxDepth               int   `yaml:"max_depth"`
	MaxParams              int   `yaml:"max_params"`
	MaxConcurrencyPerAgent int   `yaml:"max_concurrency_per_agent"`
	ReadTimeoutSeconds     int   `yaml:"read_timeout_seconds"`
	ShutdownTimeoutSeconds int   `yaml:"shutdown_timeout_seconds"`
	MaxHeaderBytes         int   `yaml:"max_header_bytes"`
	MaxOutcomeResultBytes  int64 `yaml:"max_outcome_result_bytes"`
	DecisionTimeoutMillis  int   `yaml:"decision_timeout_ms"`
	// MemoryLimitMiB is the process's soft memory limit (the Go runtime's GOMEMLIMIT), in MiB:
	// 0 (the default) means three quarters of the container's memory limit when there is one,
	// else DefaultMemoryLimitMiB; -1 means no limit. The GOMEMLIMIT environment variable, when
	// set, overrides it.
	MemoryLimitMiB int64 `yaml:"memory_limit_mib"`
	// OutcomeTTL is how long after an allowed decision its outcome may be reported (its outcome
	// token's lifetime); 0 means DefaultOutcomeTTL. Each reported outcome is remembered for as
	// long (and a minute more) so that it is accepted once: the memory it takes grows with
	// outcomes/s × OutcomeTTL, and a gateway's memory is steady only after one OutcomeTTL.
	OutcomeTTL time.Duration `yaml:"outcome_ttl"`
	// MaxOutcomeClaims bounds the outcome claims one gateway keeps in memory (the embedded
	// stores; Redis has its own memory): 0 means identity.DefaultMaxClaims (16 M). A full store
	// refuses every outcome (outcome_claims_unavailable) until claims expire, so the bound must
	// cover outcomes/s × (OutcomeTTL + 2m), and the memory it allows (≈ 11 B a claim, up to 21
	// while a minute's bucket fills) must fit under the soft memory limit.
	MaxOutcomeClaims int `yaml:"max_outcome_claims"`
}

// MinMaxOutcomeClaims and MaxMaxOutcomeClaims bound limits.max_outcome_claims: fewer than a
// thousand is a gateway that refuses outcomes at a handful a second; 2^28 claims is 3–6 GB.
const (
	MinMaxOutcomeClaims = 1000
	MaxMaxOutcomeClaims = 1 << 28
)

// DefaultOutcomeTTL is limits.outcome_ttl's default; MinOutcomeTTL and MaxOutcomeTTL bound it
// (shorter than a minute, a tool that runs a while cannot report; longer than a day, the claims
// an outcome leaves behind would be kept for a day's worth of outcomes).
const (
	DefaultOutcomeTTL = time.Hour
	MinOutcomeTTL     = time.Minute
	MaxOutcomeTTL     = 24 * time.Hour
)

// DefaultMemoryLimitMiB is limits.memory_limit_mib's fallback outside a container with a
// memory limit: far above the gateway's working set (tens of MiB), low enough that the collector
// bounds a burst's garbage instead of letting GOGC multiply the heap.
const DefaultMemoryLimitMiB = 1024

// LogConfig configures structured logs.
type LogConfig struct {
	Level string `yaml:"level"` // debug, info, warn, error
	// Format: auto (the default: console on a terminal, JSON otherwise), json, or console (one
	// readable line per event; "text" is the same).
	Format string `yaml:"format"`
}

// DefaultMaxPendingPerAgent is approvals.max_pending_per_agent when not set: far more than a
// person can review, far fewer than a flood.
const DefaultMaxPendingPerAgent = 100

// Default returns the configuration every field falls back to.
func Default() Config {
	redact := true
	return Config{
		Listen:   "127.0.0.1:8080",
		DataDir:  "portcullis-data",
		Policies: []string{"policies"},
		Inspection: InspectionConfig{
			ResultBlockLevel:  "high",
			RequestBlockLevel: "critical",
			RedactResults:     &redact,
		},
		Approvals: ApprovalsConfig{Expiry: 15 * time.Minute, MaxWait: 60 * time.Second, MaxPendingPerAgent: DefaultMaxPendingPerAgent},
		MCP: MCPConfig{ApprovalWait: 10 * time.Second, CallTimeout: 60 * time.Second, SessionIdleTimeout: 30 * time.Minute,
			ServerRequests: MCPServerRequests{Sampling: "deny", Elicitation: "deny"}, DefinitionHoldLevel: "high"},
		Ledger:   LedgerConfig{CheckpointInterval: time.Second, CheckpointRecords: 1000, ResultDurability: "sync"},
		Console:  ConsoleConfig{Path: "/console", SessionTTL: 8 * time.Hour, IdleTimeout: 30 * time.Minute},
		Sessions: SessionsConfig{IdleLifetime: 24 * time.Hour, MaxLabels: 64, MaxSessionsPerAgent: 1000, MaxAgents: 100_000},
		Limits: LimitsConfig{
			MaxBodyBytes:           1 << 20,
			MaxDepth:               64,
			MaxParams:              1000,
			MaxConcurrencyPerAgent: 64,
			ReadTimeoutSeconds:     30,
			ShutdownTimeoutSeconds: 10,
			MaxHeaderBytes:         64 << 10,
			MaxOutcomeResultBytes:  4 << 20,
			DecisionTimeoutMillis:  5000,
		},
		Log: LogConfig{Level: "info", Format: "auto"},
		Store: StoreConfig{Ledger: StoreSQLite, Approvals: StoreSQLite, Behavior: StoreMemory, Nonces: StoreFile,
			Postgres: PostgresConfig{MaxConns: 8}, Redis: RedisConfig{Prefix: "portcullis:"}},
	}
}

// ErrInvalid is wrapped by every error Load and Parse return for a bad file.
var ErrInvalid = errors.New("invalid configuration")

// Load reads and validates a configuration file. Relative paths in it are made absolute against
// the file's directory, so the gateway behaves the same whatever its working directory.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	// One byte over the limit is enough for Parse to refuse the file.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return LoadData(path, data)
}

// LoadData is Load for the bytes of path already read: a hot reload parses exactly the bytes it
// checked for stability, never a second read of the file.
func LoadData(path string, data []byte) (*Config, error) {
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	c.resolve(filepath.Dir(path))
	return c, nil
}

// mcpName: upstream names prefix tool names ("<name>__<tool>"), so they hold no underscore.
var mcpName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$`)

// Validate checks every field, naming the field path in each message; all problems are reported.
func (c *Config) Validate() error {
	var errs []error
	for _, p := range c.problems() {
		errs = append(errs, fmt.Errorf("%s: %s", p.path, p.msg))
	}
	return errors.Join(errs...)
}

// problem is one failed check of Validate: the key path and what is wrong.
type problem struct{ path, msg string }

// problemLines splits an error of another package's validation, one "path: message" per line,
// into problems under prefix.
func problemLines(prefix string, err error) []problem {
	var out []problem
	for _, line := range strings.Split(err.Error(), "\n") {
		path, msg, ok := strings.Cut(line, ": ")
		if !ok || strings.ContainsAny(path, " \"") {
			out = append(out, problem{prefix, line})
			continue
		}
		if prefix != "" && !strings.HasPrefix(path, prefix+".") && path != prefix {
			path = prefix + "." + path
		}
		out = append(out, problem{path, msg})
	}
	return out
}

func (c *Config) problems() []problem {
	var errs []problem
	add := func(path, format string, args ...any) {
		errs = append(errs, problem{path, fmt.Sprintf(format, args...)})
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen", "want host:port, got %q", c.Listen)
	}
	if c.DataDir == "" {
		add("data_dir", "required")
	}
	if len(c.Policies) == 0 {
		add("policies", "at least one policy file or directory is required (deny-by-default needs a policy to allow anything)")
	}
	for i, p := range c.Policies {
		if p == "" {
			add(fmt.Sprintf("policies[%d]", i), "empty path")
		}
	}
	for i, p := range c.ShadowPolicies {
		if p == "" {
			add(fmt.Sprintf("shadow_policies[%d]", i), "empty path")
		}
		for _, e := range c.Policies {
			if p != "" && filepath.Clean(p) == filepath.Clean(e) {
				add(fmt.Sprintf("shadow_policies[%d]", i), "the candidate set must not be the enforced one")
			}
		}
	}
	if err := c.Identity.Validate(); err != nil {
		errs = append(errs, problemLines("identity", err)...)
	}
	for name, t := range c.Tools {
		if t.Classification == "" {
			add("tools."+name+".classification", "required")
		}
	}
	if _, err := threat.ParseLevel(c.Inspection.ResultBlockLevel); err != nil {
		add("inspection.result_block_level", "%v", err)
	}
	if _, err := threat.ParseLevel(c.Inspection.RequestBlockLevel); err != nil {
		add("inspection.request_block_level", "%v", err)
	}
	if c.Inspection.ResolveLinks && len(c.Inspection.Roots) == 0 {
		add("inspection.resolve_links", "needs inspection.roots: links are resolved against them")
	}
	for _, th := range []struct {
		name string
		v    float64
	}{{"inspection.model.medium", c.Inspection.Model.Medium}, {"inspection.model.high", c.Inspection.Model.High}} {
		if th.v != 0 && !(th.v > 0 && th.v < 1) {
			add(th.name, "want a probability in (0, 1), got %v", th.v)
		}
	}
	if m := c.Inspection.Model; m.Medium > 0 && m.High > 0 && m.Medium > m.High {
		add("inspection.model.medium", "%v is above inspection.model.high (%v)", m.Medium, m.High)
	}
	if c.Approvals.Expiry <= 0 || c.Approvals.Expiry > 30*24*time.Hour {
		add("approvals.expiry", "want a duration in (0, 720h], got %v", c.Approvals.Expiry)
	}
	if c.Approvals.MaxWait < 0 || c.Approvals.MaxWait > 10*time.Minute {
		add("approvals.max_wait", "want a duration in [0, 10m], got %v", c.Approvals.MaxWait)
	}
	if c.Approvals.MaxPendingPerAgent < 1 || c.Approvals.MaxPendingPerAgent > 100_000 {
		add("approvals.max_pending_per_agent", "want a number in [1, 100000], got %d", c.Approvals.MaxPendingPerAgent)
	}
	if err := identity.ValidateApproverLogins("approvals", c.Approvals.Logins, c.Identity); err != nil {
		errs = append(errs, problemLines("", err)...)
	}
	issuers := map[string]bool{}
	for _, is := range c.Approvals.Logins.Issuers {
		issuers[is.Issuer] = true
	}
	if c.Console.OIDC.On() {
		issuers[c.Console.OIDC.Issuer] = true // the console's sign-in names its people too
	}
	seen := map[string]bool{}
	for i, ap := range c.Approvals.Approvers {
		path := fmt.Sprintf("approvals.approvers[%d]", i)
		switch {
		case ap.ID == "":
			add(path+".id", "required")
		case !validApproverID(ap.ID):
			add(path+".id", "%q: want valid UTF-8 of at most 256 bytes, without control characters or surrounding spaces (IDs are compared exactly)", ap.ID)
		case ap.Issuer == "" && strings.Contains(ap.ID, "#"):
			add(path+".id", "%q: an approver without an issuer has no '#' in their ID ('#' qualifies IDs by issuer)", ap.ID)
		case seen[approval.FoldID(ap.ID)]:
			// One entry per person: approver keys name the ID alone, and IDs that differ only in
			// case or look-alike letters would be one person to whoever reads the ledger.
			add(path+".id", "duplicate approver %q", ap.ID)
		}
		seen[approval.FoldID(ap.ID)] = true
		if ap.Issuer != "" && !issuers[ap.Issuer] {
			add(path+".issuer", "%q is not one of approvals.issuers, nor console.oidc.issuer", ap.Issuer)
		}
		switch ap.RoleOf() {
		case RoleApprover, RoleAdmin:
			if len(ap.Scopes) == 0 {
				add(path+".scopes", "required: scopes are granted, never implied")
			}
		case RoleAuditor:
			if len(ap.Scopes) > 0 {
				add(path+".scopes", "an auditor approves nothing: remove the scopes, or make the role approver or admin")
			}
		default:
			add(path+".role", "want approver, auditor or admin, got %q", ap.Role)
		}
		if err := approval.ValidateScopes(ap.Scopes); err != nil {
			add(path, "%v", err)
		}
		for _, a := range c.Identity.Agents {
			if approval.SamePerson(a.ID, ap.ID) {
				add(path+".id", "%q is an agent; agents never approve", ap.ID)
			}
		}
	}
	if !validConsolePath(c.Console.Path) {
		add("console.path", "want an absolute path like /console (letters, digits, '-', '_', '/'; not / and not under /v1, /mcp or /metrics), got %q", c.Console.Path)
	}
	if c.Console.SessionTTL < time.Minute || c.Console.SessionTTL > 7*24*time.Hour {
		add("console.session_ttl", "want a duration in [1m, 168h], got %v", c.Console.SessionTTL)
	}
	if c.Console.IdleTimeout < time.Minute || c.Console.IdleTimeout > c.Console.SessionTTL {
		add("console.idle_timeout", "want a duration in [1m, console.session_ttl], got %v", c.Console.IdleTimeout)
	}
	if c.Console.OIDC.On() {
		errs = append(errs, c.validateConsoleOIDC()...)
	}
	if w := c.Approvals.Webhook; w.URL != "" {
		if !strings.HasPrefix(w.URL, "https://") && !strings.HasPrefix(w.URL, "http://") {
			add("approvals.webhook.url", "want an http(s) URL, got %q", w.URL)
		}
		if w.SecretEnv == "" {
			add("approvals.webhook.secret_env", "required with a webhook url: receivers must be able to verify notifications")
		}
	}
	for name, u := range c.LLM.Upstreams {
		path := "llm.upstreams." + name
		switch name {
		case "chat_completions", "responses", "messages":
		default:
			add(path, "unknown format (want chat_completions, responses or messages)")
		}
		if !strings.HasPrefix(u.BaseURL, "https://") && !strings.HasPrefix(u.BaseURL, "http://") {
			add(path+".base_url", "want an http(s) URL ending in /v1, got %q", u.BaseURL)
		}
		for h := range u.Headers {
			checkHeaderName(path+".headers."+h, h, add)
		}
		for h, env := range u.HeadersEnv {
			checkHeaderName(path+".headers_env."+h, h, add)
			if !envName.MatchString(env) {
				add(path+".headers_env."+h, "want the name of an environment variable, got %q", env)
			}
			if _, dup := u.Headers[h]; dup {
				add(path+".headers_env."+h, "also set in headers")
			}
		}
	}
	switch c.LLM.BlockedResult {
	case "", "refuse", "replace":
	default:
		add("llm.blocked_result", "%q (want refuse or replace)", c.LLM.BlockedResult)
	}
	if c.LLM.TrustedRoles != nil {
		for i, r := range *c.LLM.TrustedRoles {
			switch r {
			case "system", "developer", "user":
			case "tool", "document":
				add(fmt.Sprintf("llm.trusted_roles[%d]", i), "%q is third-party text, where prompt injection arrives: it cannot be trusted", r)
			default:
				add(fmt.Sprintf("llm.trusted_roles[%d]", i), "unknown role %q (want system, developer or user)", r)
			}
		}
	}
	if c.LLM.Timeout < 0 || c.LLM.StreamIdleTimeout < 0 || c.LLM.MaxRequestBytes < 0 {
		add("llm", "timeouts and sizes must not be negative")
	}
	if e := c.Tracing.Endpoint; e != "" && !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
		add("tracing.endpoint", "want an http(s) OTLP traces URL, got %q", e)
	}
	if r := c.Tracing.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		add("tracing.sample_ratio", "want a ratio in [0, 1], got %v", *r)
	}
	errs = append(errs, c.Export.problems()...)
	errs = append(errs, c.Alerts.problems()...)
	if c.Ledger.CheckpointInterval <= 0 || c.Ledger.CheckpointInterval > time.Second {
		add("ledger.checkpoint_interval", "want a duration in (0, 1s] (the ledger contract checkpoints at least every second), got %v", c.Ledger.CheckpointInterval)
	}
	if d := c.Ledger.ResultDurability; d != "" && d != "sync" && d != "relaxed" {
		add("ledger.result_durability", "want sync or relaxed, got %q", d)
	}
	if r := c.Ledger.Retention; r.MaxAge < 0 || r.Interval < 0 || r.MaxRecords < 0 || r.SegmentRecords < 0 {
		add("ledger.retention", "want values ≥ 0, got max_age %v, interval %v, max_records %d, segment_records %d", r.MaxAge, r.Interval, r.MaxRecords, r.SegmentRecords)
	} else if r.Enabled() && r.MaxAge > 0 && r.MaxAge < time.Minute {
		add("ledger.retention.max_age", "want at least 1m (records younger than the checkpoint cadence cannot be archived), got %v", r.MaxAge)
	}
	if c.Ledger.CheckpointRecords <= 0 || c.Ledger.CheckpointRecords > 1000 {
		add("ledger.checkpoint_records", "want 1..1000, got %d", c.Ledger.CheckpointRecords)
	}
	l := c.Limits
	positive := []struct {
		path string
		v    int64
	}{
		{"limits.max_body_bytes", l.MaxBodyBytes}, {"limits.max_depth", int64(l.MaxDepth)},
		{"limits.max_params", int64(l.MaxParams)}, {"limits.max_concurrency_per_agent", int64(l.MaxConcurrencyPerAgent)},
		{"limits.read_timeout_seconds", int64(l.ReadTimeoutSeconds)}, {"limits.shutdown_timeout_seconds", int64(l.ShutdownTimeoutSeconds)},
		{"limits.max_header_bytes", int64(l.MaxHeaderBytes)}, {"limits.max_outcome_result_bytes", l.MaxOutcomeResultBytes},
		{"limits.decision_timeout_ms", int64(l.DecisionTimeoutMillis)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			add(p.path, "must be positive, got %d", p.v)
		}
	}
	if t := c.Inspection.TimeBudget; t < 0 || t > 10*time.Minute {
		add("inspection.time_budget", "want 0 (the default, 30s) up to 10m, got %v", t)
	}
	if l.MemoryLimitMiB < -1 || (l.MemoryLimitMiB > 0 && l.MemoryLimitMiB < 64) || l.MemoryLimitMiB > 1<<30 {
		add("limits.memory_limit_mib", "want 0 (automatic), -1 (none) or 64..%d MiB, got %d", 1<<30, l.MemoryLimitMiB)
	}
	if t := l.OutcomeTTL; t != 0 && (t < MinOutcomeTTL || t > MaxOutcomeTTL) {
		add("limits.outcome_ttl", "want 0 (the default, %v) or %v..%v, got %v", DefaultOutcomeTTL, MinOutcomeTTL, MaxOutcomeTTL, t)
	}
	if n := l.MaxOutcomeClaims; n != 0 && (n < MinMaxOutcomeClaims || n > MaxMaxOutcomeClaims) {
		add("limits.max_outcome_claims", "want 0 (the default, 16777216) or %d..%d, got %d", MinMaxOutcomeClaims, MaxMaxOutcomeClaims, n)
	}
	names := map[string]bool{}
	for i, u := range c.MCP.Upstreams {
		path := fmt.Sprintf("mcp.upstreams[%d]", i)
		switch {
		case u.Name == "" && len(c.MCP.Upstreams) == 1:
			// A sole upstream without a name: nothing to tell apart, names stay unprefixed.
		case !mcpName.MatchString(u.Name):
			add(path+".name", "want letters, digits, '-' or '.' (empty only for a sole upstream), got %q", u.Name)
		case names[u.Name]:
			add(path+".name", "duplicate upstream %q", u.Name)
		}
		names[u.Name] = true
		if (u.Command == "") == (u.URL == "") {
			add(path, "want exactly one of command or url")
		}
		if u.URL != "" && !strings.HasPrefix(u.URL, "https://") && !strings.HasPrefix(u.URL, "http://") {
			add(path+".url", "want an http(s) URL, got %q", u.URL)
		}
		u.validateCredentials(path, add)
	}
	if c.MCP.ApprovalWait < 0 || c.MCP.ApprovalWait > c.Approvals.MaxWait {
		add("mcp.approval_wait", "want a duration in [0, approvals.max_wait], got %v", c.MCP.ApprovalWait)
	}
	if c.MCP.CallTimeout < 0 || c.MCP.CallTimeout > time.Hour {
		add("mcp.call_timeout", "want a duration in [0, 1h], got %v", c.MCP.CallTimeout)
	}
	if c.MCP.SessionIdleTimeout < time.Second || c.MCP.SessionIdleTimeout > 7*24*time.Hour {
		add("mcp.session_idle_timeout", "want a duration in [1s, 168h], got %v", c.MCP.SessionIdleTimeout)
	}
	if _, err := threat.ParseLevel(c.MCP.DefinitionHoldLevel); err != nil {
		add("mcp.definition_hold_level", "%v", err)
	}
	for _, k := range []struct{ path, v string }{{"mcp.server_requests.sampling", c.MCP.ServerRequests.Sampling},
		{"mcp.server_requests.elicitation", c.MCP.ServerRequests.Elicitation}} {
		if k.v != "deny" && k.v != "allow" {
			add(k.path, "want deny or allow, got %q", k.v)
		}
	}
	c.Store.validate(add, c.ConsoleOn())
	c.Sessions.validate(add)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "json", "console", "text":
	default:
		add("log.format", "want auto, json or console, got %q", c.Log.Format)
	}
	return errs
}

// validApproverID: IDs are compared exactly, so none may hide a difference a reader cannot see.
func validApproverID(id string) bool {
	if len(id) > 256 || !utf8.ValidString(id) || strings.TrimSpace(id) != id {
		return false
	}
	for _, r := range id {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

// pgSchema: a plain PostgreSQL identifier (it is quoted anyway), so the name is what psql shows.
var pgSchema = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// envName: a portable environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (s SessionsConfig) validate(add func(path, format string, args ...any)) {
	if s.IdleLifetime < time.Minute || s.IdleLifetime > 30*24*time.Hour {
		add("sessions.idle_lifetime", "want a duration in [1m, 720h], got %v", s.IdleLifetime)
	}
	for _, k := range []struct {
		path     string
		v, limit int
	}{
		{"sessions.max_labels", s.MaxLabels, 1024},
		{"sessions.max_sessions_per_agent", s.MaxSessionsPerAgent, 1_000_000},
		{"sessions.max_agents", s.MaxAgents, 10_000_000},
	} {
		if k.v < 1 || k.v > k.limit {
			add(k.path, "want 1..%d, got %d", k.limit, k.v)
		}
	}
}

func (s StoreConfig) validate(add func(path, format string, args ...any), console bool) {
	for _, k := range []struct {
		path, v string
		want    []string
	}{
		{"store.ledger", s.Ledger, []string{StoreSQLite, StorePostgres}},
		{"store.approvals", s.Approvals, []string{StoreSQLite, StorePostgres}},
		{"store.behavior", s.Behavior, []string{StoreMemory, StoreRedis}},
		{"store.nonces", s.Nonces, []string{StoreFile, StoreSQLite, StoreMemory, StoreRedis}},
		{"store.console", s.ConsoleSessions(), []string{StoreMemory, StorePostgres, StoreRedis}},
	} {
		if !slices.Contains(k.want, k.v) {
			add(k.path, "want %s, got %q", strings.Join(k.want, " or "), k.v)
		}
	}
	if s.uses(StorePostgres, console) && !envName.MatchString(s.Postgres.DSNEnv) {
		add("store.postgres.dsn_env", "want the name of the environment variable holding the connection string, got %q", s.Postgres.DSNEnv)
	}
	if s.Postgres.Schema != "" && !pgSchema.MatchString(s.Postgres.Schema) {
		add("store.postgres.schema", "want a lower-case identifier (a-z, 0-9, _), got %q", s.Postgres.Schema)
	}
	if s.Postgres.MaxConns < 1 || s.Postgres.MaxConns > 1000 {
		add("store.postgres.max_conns", "want 1..1000, got %d", s.Postgres.MaxConns)
	}
	if s.uses(StoreRedis, console) && !envName.MatchString(s.Redis.URLEnv) {
		add("store.redis.url_env", "want the name of the environment variable holding the redis:// URL, got %q", s.Redis.URLEnv)
	}
	if s.Redis.Prefix == "" {
		add("store.redis.prefix", "required: keys of different gateways must not collide")
	}
}

// alertRules are the rule names alerts.disabled may name (alert.Rules; a test keeps them equal).
var alertRules = []string{"denial_spike", "finding_spike", "new_tool", "new_parameter", "unusual_hour", "error_rate",
	"approval_backlog", "key_rotation", "ledger_verification"}

func (a AlertsConfig) problems() []problem {
	var errs []problem
	add := func(path, format string, args ...any) {
		errs = append(errs, problem{path, fmt.Sprintf(format, args...)})
	}
	for i, r := range a.Disabled {
		if !slices.Contains(alertRules, r) {
			add(fmt.Sprintf("alerts.disabled[%d]", i), "unknown rule %q; want one of %s", r, strings.Join(alertRules, ", "))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"window", a.Window}, {"backlog_age", a.BacklogAge}, {"cooldown", a.Cooldown}} {
		if d.v < 0 {
			add("alerts."+d.name, "must not be negative")
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"baseline_windows", a.BaselineWindows}, {"spike_floor", a.SpikeFloor}, {"new_tool_after", a.NewToolAfter},
		{"error_min", a.ErrorMin}, {"backlog_pending", a.BacklogPending}, {"max_per_window", a.MaxPerWindow}} {
		if n.v < 0 {
			add("alerts."+n.name, "must not be negative")
		}
	}
	if a.BaselineWindows > 1000 {
		add("alerts.baseline_windows", "at most 1000 (each agent keeps a counter per window)")
	}
	if a.SpikeFactor < 0 {
		add("alerts.spike_factor", "must not be negative")
	}
	if a.ErrorRate < 0 || a.ErrorRate > 1 {
		add("alerts.error_rate", "want a share between 0 and 1, got %v", a.ErrorRate)
	}
	return errs
}

var exportNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func (e ExportConfig) problems() []problem {
	var errs []problem
	add := func(path, format string, args ...any) {
		errs = append(errs, problem{path, fmt.Sprintf(format, args...)})
	}
	seen := map[string]bool{}
	paths := map[string]bool{}
	for i, s := range e.Sinks {
		path := fmt.Sprintf("export.sinks[%d]", i)
		if !exportNameRE.MatchString(s.Name) {
			add(path+".name", "want a name of lower-case letters, digits, '-' and '_' (it names the state file and the metric label), got %q", s.Name)
		} else if seen[s.Name] {
			add(path+".name", "duplicate sink %q", s.Name)
		}
		seen[s.Name] = true
		for j, k := range s.Kinds {
			if !ledger.Kind(k).Valid() {
				add(fmt.Sprintf("%s.kinds[%d]", path, j), "unknown record kind %q (see docs/ledger.md)", k)
			}
		}
		switch s.Type {
		case "jsonl":
			if s.Path == "" {
				add(path+".path", "required: a file, or - for stdout")
			} else if paths[s.Path] {
				add(path+".path", "another sink writes %q", s.Path)
			}
			paths[s.Path] = true
			if s.Endpoint != "" || s.ServiceName != "" || len(s.HeadersEnv) > 0 {
				add(path, "endpoint, service_name and headers_env are for type otlp")
			}
			if s.Path == "-" && s.MaxBytes > 0 {
				add(path+".max_bytes", "stdout is not rotated")
			}
		case "otlp":
			if !strings.HasPrefix(s.Endpoint, "http://") && !strings.HasPrefix(s.Endpoint, "https://") {
				add(path+".endpoint", "want the receiver's http(s) OTLP logs URL, e.g. http://127.0.0.1:4318/v1/logs, got %q", s.Endpoint)
			}
			if s.Path != "" || s.MaxBytes != 0 || s.MaxFiles != 0 {
				add(path, "path, max_bytes and max_files are for type jsonl")
			}
			for h, env := range s.HeadersEnv {
				checkHeaderName(path+".headers_env."+h, h, add)
				if !envName.MatchString(env) {
					add(path+".headers_env."+h, "want the name of an environment variable, got %q", env)
				}
			}
		default:
			add(path+".type", "want jsonl or otlp, got %q", s.Type)
		}
		if s.MaxBytes < 0 || s.MaxFiles < 0 || s.BatchRecords < 0 || s.MaxLagRecords < 0 || s.Poll < 0 {
			add(path, "sizes, counts and durations must not be negative")
		}
		if s.BatchRecords > 10000 {
			add(path+".batch_records", "want at most 10000, got %d", s.BatchRecords)
		}
	}
	return errs
}

// resolve makes relative paths absolute against dir (the configuration file's directory).
func (c *Config) resolve(dir string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	c.DataDir = abs(c.DataDir)
	for i := range c.Policies {
		c.Policies[i] = abs(c.Policies[i])
	}
	for i := range c.ShadowPolicies {
		c.ShadowPolicies[i] = abs(c.ShadowPolicies[i])
	}
	for i := range c.Identity.JWTIssuers {
		for j := range c.Identity.JWTIssuers[i].KeyFiles {
			c.Identity.JWTIssuers[i].KeyFiles[j] = abs(c.Identity.JWTIssuers[i].KeyFiles[j])
		}
	}
	for i := range c.Export.Sinks {
		if p := c.Export.Sinks[i].Path; p != "-" {
			c.Export.Sinks[i].Path = abs(p)
		}
	}
	if f := c.Console.OIDC.ClientSecretFile; f != "" {
		c.Console.OIDC.ClientSecretFile = abs(f)
	}
	for i := range c.MCP.Upstreams {
		u := &c.MCP.Upstreams[i]
		for h, v := range u.Headers {
			v.ValueFile = abs(v.ValueFile)
			u.Headers[h] = v
		}
		if u.OAuth != nil {
			u.OAuth.ClientSecretFile = abs(u.OAuth.ClientSecretFile)
			u.OAuth.PrivateKeyFile = abs(u.OAuth.PrivateKeyFile)
		}
	}
	for _, is := range [][]identity.IssuerConfig{c.Identity.Users.Issuers, c.Approvals.Logins.Issuers} {
		for i := range is {
			for j := range is[i].KeyFiles {
				is[i].KeyFiles[j] = abs(is[i].KeyFiles[j])
			}
		}
	}
}

// LLMTrusted reports whether conversation text of role is operator-authored (llm.trusted_roles;
// by default system and developer).
func (c *Config) LLMTrusted(role string) bool {
	if c.LLM.TrustedRoles == nil {
		return role == "system" || role == "developer"
	}
	return slices.Contains(*c.LLM.TrustedRoles, role)
}

// RequestBlock returns the parsed request block level (validated by Validate); threat.None
// means no call is denied for its inspection alone.
func (c *Config) RequestBlock() threat.Level {
	l, _ := threat.ParseLevel(c.Inspection.RequestBlockLevel)
	return l
}

// ResultBlock returns the parsed result block level (validated by Validate).
func (c *Config) ResultBlock() threat.Level {
	l, _ := threat.ParseLevel(c.Inspection.ResultBlockLevel)
	return l
}

// validConsolePath: a plain absolute path that cannot shadow the API's own routes.
func validConsolePath(p string) bool {
	if len(p) < 2 || len(p) > 64 || p[0] != '/' || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
		return false
	}
	for _, r := range p[1:] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '/') {
			return false
		}
	}
	for _, reserved := range []string{"/v1", "/mcp", "/metrics", "/healthz", "/readyz", "/llm", "/openai", "/anthropic"} {
		if p == reserved || strings.HasPrefix(p, reserved+"/") {
			return false
		}
	}
	return true
}
