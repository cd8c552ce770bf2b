// Package app is the composition root: configuration in, running parts out. It is the only
// package that names concrete stores (SQLite and memory by default; PostgreSQL and Redis for
// replicas, see stores.go), and the only one that knows how the data directory is laid out.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/auditindex"
	"github.com/portcullis-ai/portcullis/internal/behavior"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/console"
	mcpgw "github.com/portcullis-ai/portcullis/internal/gateway/mcp"
	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
	"github.com/portcullis-ai/portcullis/internal/server"
	"github.com/portcullis-ai/portcullis/internal/watch"
)

// The data directory's layout.
const (
	ConfigFile    = "portcullis.yaml"
	LedgerFile    = "ledger.db"
	ApprovalsFile = "approvals.db"
	// NoncesFile keeps signed requests' nonces (store.nonces: sqlite), in its own file so that
	// a signed request never waits on the approvals database's write lock.
	NoncesFile = "nonces.db"
	// AuditIndexFile is the console's search index of the ledger (auditindex), in its own file
	// so that indexing never takes the ledger file's write lock; deleting it rebuilds it.
	AuditIndexFile = "audit-index.db"
	// NoncesDir holds the journal of signed requests' nonces (store.nonces: file, the default).
	NoncesDir = "nonces"
	// OutcomeClaimsDir holds the journal of the outcomes reported (store.nonces: file).
	OutcomeClaimsDir = "outcome-claims"
	// The ledger's keys (ledger.SigningKeyFile and friends), its witness (ledger.WitnessFile:
	// the latest checkpoint it signed, kept outside the store) and the API key file
	// (identity.KeyFileName) live in the data directory too.
)

// App is a running gateway.
type App struct {
	cfg     *config.Config
	cfgPath string
	log     *slog.Logger

	stores      *stores
	ledgerStore ledger.Store
	// recent keeps the records this process committed last, for the readers that follow the
	// log here (alert rules, audit index, exports): they take them from memory, not the store.
	recent     *ledger.Recent
	ledger     *ledger.Ledger
	approvals  *approval.Engine
	approvers  *approvers
	webhook    *approval.Webhook
	rt         atomic.Pointer[runtimeState] // configuration and policy in force, swapped whole
	servedAddr atomic.Pointer[string]       // the address Serve listens on (listen may say port 0)
	reloader   *watch.Watcher
	// shadow is the candidate policy set (shadow_policies), nil when none is configured; its
	// own reloader swaps it, so a bad candidate never holds back the enforced set's reloads.
	shadow         atomic.Pointer[policy.Set]
	shadowReloader *watch.Watcher
	policies       currentPolicies
	auth           swappableAuth
	keys           *identity.FileKeyStore
	guard          *guard.Guard
	metrics        *server.Metrics
	server         *server.Server
	mcp            *mcpgw.Gateway

	// parts are everything Open provisioned and started, stopped by Close in reverse
	// (lifecycle.go).
	parts     lifecycle
	closeOnce sync.Once
}

// Open provisions every part from cfg (loaded from cfgPath, which is watched for changes),
// then starts their background work — the configuration and policy reloader, approval
// notifications across replicas, the approval webhook, the expiry sweep — whether or not the app
// will serve HTTP. On error, whatever was opened is closed again.
func Open(ctx context.Context, cfg *config.Config, cfgPath string, log *slog.Logger) (_ *App, err error) {
	// Not the named result: every error return sets that to nil before the deferred Close runs.
	a := &App{cfg: cfg, cfgPath: cfgPath, log: log}
	defer func() {
		if err != nil {
			a.Close(context.WithoutCancel(ctx))
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	// Before anything in it is opened: a second gateway on this directory must not touch the
	// ledger, the keys or the approvals the first one writes.
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	a.parts.opened("data directory lock", func(context.Context) error { unlock(); return nil }) // released last
	stopTracing, err := startTracing(ctx, cfg.Tracing)
	if err != nil {
		return nil, err
	}
	a.parts.opened("tracing", func(ctx context.Context) error {
		if err := stopTracing(ctx); err != nil {
			return fmt.Errorf("flush traces: %w", err)
		}
		return nil
	})

	// The ledger first: nothing may be decided that cannot be recorded.
	keys, err := ledger.LoadKeys(cfg.DataDir)
	if errors.Is(err, ledger.ErrNoKeys) || errors.Is(err, os.ErrNotExist) {
		keys, err = ledger.GenerateKeys(cfg.DataDir, ledger.NewOrigin())
	}
	if err != nil {
		return nil, fmt.Errorf("ledger keys: %w", err)
	}
	verifiers, _, err := keys.Verifiers()
	if err != nil {
		return nil, fmt.Errorf("ledger keys: %w", err)
	}
	if a.stores, err = openStores(ctx, cfg, log); err != nil {
		return nil, err
	}
	a.parts.opened("stores", func(context.Context) error { a.stores.close(a.log); return nil }) // after the ledger's last records; pools last
	a.ledgerStore = a.stores.ledger
	a.recent = ledger.NewRecent(0, 0)
	a.ledger, err = ledger.Open(ctx, ledger.Options{Store: a.ledgerStore, Recent: a.recent, Signer: keys.Signer, Verifiers: verifiers,
		KeyDir: cfg.DataDir, WitnessFile: filepath.Join(cfg.DataDir, ledger.WitnessFile),
		HashKey: keys.HashKey, SensitiveParams: sensitive(cfg.Ledger.SensitiveParams),
		CheckpointInterval: cfg.Ledger.CheckpointInterval, CheckpointRecords: cfg.Ledger.CheckpointRecords,
		RelaxedResults: cfg.Ledger.ResultDurability == "relaxed", Message: "portcullis serve"})
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	// Closing writes the shutdown record and a final signed checkpoint.
	a.parts.opened("ledger", func(ctx context.Context) error {
		if err := a.ledger.Close(ctx); err != nil {
			a.log.Error("close ledger", slog.Any("error", err))
		}
		return nil
	})
	if cfg.Ledger.Retention.Enabled() {
		stop := startRetention(a.ledgerStore, cfg, keys.Public, a.log)
		a.parts.opened("ledger retention", func(context.Context) error { stop(); return nil })
	}
	a.metrics = server.NewMetrics(func() float64 { return float64(a.ledger.QueueDepth()) })
	// The console's search index follows the committed ledger in the background, never from
	// Append: a decision never waits for it. It takes this process's records from memory.
	indexer := auditindex.New(auditindex.Options{Ledger: a.follow(), Index: a.stores.auditIndex, Logger: a.log})
	a.metrics.AuditIndex(indexer.Stats)
	a.parts.background("audit index", indexer.Run)
	if err := a.openExports(ctx, cfg); err != nil {
		return nil, err
	}

	// Identity: API keys in the data directory, replay protection in the configured store.
	if a.keys, err = identity.OpenFileKeyStore(filepath.Join(cfg.DataDir, identity.KeyFileName)); err != nil {
		return nil, fmt.Errorf("open api keys: %w", err)
	}
	a.parts.opened("api keys", func(context.Context) error { return a.keys.Close() })
	// Identity, approver logins, run-time configuration and policies: one state, hot-reloaded as
	// one; a bad reload keeps the previous state and is reported.
	a.auth, a.policies = swappableAuth{rt: &a.rt}, currentPolicies{rt: &a.rt}
	a.parts.opened("configuration and policy", func(context.Context) error {
		if a.shadowReloader != nil {
			_ = a.shadowReloader.Close()
		}
		if a.reloader != nil {
			_ = a.reloader.Close() // waits for a reload in flight
		}
		if st := a.rt.Load(); st != nil {
			st.stop() // the last verifier's and approver logins' JWKS refresh
		}
		return nil
	})
	if err := a.startReloader(ctx, cfg); err != nil {
		return nil, err
	}

	var apprOpts []approval.Option
	if n := a.stores.notifier; n != nil {
		// Approvals shared by replicas: a decision at one wakes the long-polls at all of them.
		a.parts.background("approval notifications", func(ctx context.Context) { _ = n.Run(ctx) })
		apprOpts = append(apprOpts, approval.WithNotifier(n))
	}
	if w := cfg.Approvals.Webhook; w.URL != "" {
		a.webhook, err = approval.NewWebhook(approval.WebhookConfig{URL: w.URL, Secret: []byte(os.Getenv(w.SecretEnv)), ConsoleURL: w.ConsoleURL,
			OnError: func(id string, err error) {
				log.Warn("approval notification failed; the request stays pending", slog.String("approval_id", id), slog.Any("error", err))
			}})
		if err != nil {
			return nil, fmt.Errorf("approvals.webhook: %w", err)
		}
		// Delivered by whatever runs the app: serve, or the stdio wrapper with or without --listen.
		wh := a.webhook
		a.parts.background("approval webhook", func(ctx context.Context) { _ = wh.Run(ctx) })
		apprOpts = append(apprOpts, approval.WithAnnouncer(a.webhook))
	}
	apprOpts = append(apprOpts, approval.WithMaxPendingPerAgent(cfg.Approvals.MaxPendingPerAgent))
	// A state change and its ledger event are bounded like a decision's record: by the decision
	// timeout, on the engine's own context rather than the approver's request.
	recordTimeout := time.Duration(cfg.Limits.DecisionTimeoutMillis) * time.Millisecond
	apprOpts = append(apprOpts, approval.WithRecordTimeout(recordTimeout))
	if a.approvals, err = approval.New(a.stores.approvals, guard.ApprovalRecorder(a.ledger), apprOpts...); err != nil {
		return nil, fmt.Errorf("approvals: %w", err)
	}
	// After the webhook, which alerts are delivered through.
	if err := a.openAlerts(ctx, cfg, keys.Public); err != nil {
		return nil, err
	}
	if sw, ok := a.stores.nonces.(interface {
		RunSweeper(context.Context, time.Duration)
	}); ok {
		// Expired nonces are freed on a timer, not only when the next signed request comes.
		a.parts.background("nonce sweep", func(ctx context.Context) { sw.RunSweeper(ctx, nonceSweepInterval) })
	}
	if sw, ok := a.stores.claims.(interface {
		RunSweeper(context.Context, time.Duration)
	}); ok && a.stores.claims != a.stores.nonces {
		a.parts.background("outcome claim sweep", func(ctx context.Context) { sw.RunSweeper(ctx, nonceSweepInterval) })
	}
	a.parts.background("approval expiry", func(ctx context.Context) {
		_ = a.approvals.Run(ctx, 5*time.Second, func(err error) { a.log.Error("approval expiry sweep", slog.Any("error", err)) })
	})
	approverKeys, err := identity.OpenFileKeyStore(filepath.Join(cfg.DataDir, ApproverKeysFile))
	if err != nil {
		return nil, fmt.Errorf("open approver keys: %w", err)
	}
	a.parts.opened("approver keys", func(context.Context) error { return approverKeys.Close() })
	a.approvers = &approvers{keys: approverKeys, rt: &a.rt}

	detectors := inspect.DetectorConfig{PathRoots: cfg.Inspection.Roots, ShellTools: cfg.Inspection.ShellTools, ResolveLinks: cfg.Inspection.ResolveLinks}
	if cfg.Inspection.ResolveHosts {
		detectors.Resolver = net.DefaultResolver
	}
	a.guard, err = guard.New(guard.Options{
		Auth: a.auth,
		Inspector: inspect.New(inspect.Config{MaxBytes: inspectMaxBytes(cfg), DetectorConfig: detectors, AllowedHosts: cfg.Inspection.AllowedHosts,
			Model: inspectModel(cfg), TimeBudget: cfg.Inspection.TimeBudget}),
		Behavior:                guard.Tracked(behavior.NewTracker(a.stores.behavior, behavior.DefaultConfig())),
		Sessions:                a.stores.sessions,
		Proposals:               a.stores.proposals,
		Links:                   a.stores.links,
		Policies:                a.policies,
		Shadow:                  shadowPolicies{&a.shadow},
		Approvals:               a.approvals,
		Ledger:                  a.ledger,
		ToolClassificationsFrom: func() map[string]string { return a.rt.Load().classes },
		ResultPolicyFrom:        func() guard.ResultPolicy { return a.rt.Load().results },
		ApprovalExpiry:          cfg.Approvals.Expiry,
		RecordTimeout:           recordTimeout,
		// Outcome tokens: keyed from the ledger's hash key, which every replica has (the
		// copied data directory), and claimed once in the claim store (Redis for replicas).
		OutcomeKey:        guard.DeriveOutcomeKey(keys.HashKey),
		OutcomeClaims:     a.stores.claims,
		OutcomeTTL:        cfg.Limits.OutcomeTTL,
		RequestBlockLevel: cfg.RequestBlock(),
	})
	if err != nil {
		return nil, err
	}
	if len(cfg.ShadowPolicies) > 0 {
		a.metrics.Shadow(a.guard.ShadowTransitions)
	}
	a.metrics.ProposalsLost(a.guard.ProposalsLost)
	llmRoutes, err := a.llmRoutes(cfg.LLM)
	if err != nil {
		return nil, err
	}
	consoleRoutes, err := a.consoleRoutes(cfg, verifiers, keys.HashKey)
	if err != nil {
		return nil, err
	}
	var mcpRoutes func(*http.ServeMux)
	if len(cfg.MCP.Upstreams) > 0 {
		ups, err := MCPUpstreams(cfg.MCP.Upstreams, os.Stderr, a.log.With(slog.String("component", "mcp")))
		if err != nil {
			return nil, err
		}
		if a.mcp, err = a.mcpGateway(ctx, ups, true); err != nil {
			return nil, err
		}
		gw := a.mcp
		a.parts.opened("mcp upstreams", func(context.Context) error { return gw.Close() })
		mcpRoutes = a.mcpRoutes(a.mcp)
		a.metrics.MCPLogs(func() map[string]uint64 { return gw.LogStats().ByOutcome() })
	}
	a.server = server.New(server.Options{
		Extra: func(mux *http.ServeMux) {
			for _, routes := range []func(*http.ServeMux){llmRoutes, mcpRoutes, consoleRoutes} {
				if routes != nil {
					routes(mux)
				}
			}
		},
		Decider:   a.guard,
		Approvals: a.approvals,
		Limits: server.Limits{MaxApprovalWait: cfg.Approvals.MaxWait, MaxBodyBytes: cfg.Limits.MaxBodyBytes, MaxDepth: cfg.Limits.MaxDepth, MaxParams: cfg.Limits.MaxParams,
			MaxConcurrencyPerAgent: cfg.Limits.MaxConcurrencyPerAgent, DecisionTimeout: time.Duration(cfg.Limits.DecisionTimeoutMillis) * time.Millisecond},
		Ready:    a.ready,
		Degraded: a.degraded,
		Metrics:  a.metrics,
		Logger:   log,
	})
	a.server.RegisterApprovals(a.approvals, a.approvers, cfg.Approvals.MaxWait)
	// Everything is provisioned and valid: start what runs in the background.
	if err := a.parts.start(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// consoleRoutes mounts the web console (console.enabled, console.path), or nothing.
func (a *App) consoleRoutes(cfg *config.Config, verifiers note.Verifiers, hashKey []byte) (func(*http.ServeMux), error) {
	if !cfg.ConsoleOn() {
		return nil, nil
	}
	oidcOpts, err := a.consoleOIDC(cfg)
	if err != nil {
		return nil, err
	}
	c, err := console.New(console.Options{OIDC: oidcOpts, Path: cfg.Console.Path, Queue: a.approvals, Auth: a.approvers, Ledger: a.ledgerStore, Index: a.stores.auditIndex,
		Agents: consoleAgents{rt: &a.rt, keys: a.keys, now: time.Now},
		Policies: func() console.PolicyState {
			st := a.rt.Load()
			if st == nil {
				return console.PolicyState{}
			}
			return console.PolicyState{Set: st.policies, Lint: policy.LintOptions{RequestBlockLevel: st.cfg.RequestBlock()},
				Shadow: a.shadow.Load(), ShadowTransitions: a.guard.ShadowTransitions()}
		},
		Verifiers: verifiers, SessionTTL: cfg.Console.SessionTTL, IdleTimeout: cfg.Console.IdleTimeout, Logger: a.log,
		Sessions: a.stores.console, SessionKey: console.DeriveSessionKey(hashKey)})
	if err != nil {
		return nil, err
	}
	if a.stores.console != nil {
		a.metrics.ConsoleSessionsRefused(c.SessionsRefused)
	}
	return c.Register, nil
}

// consoleOIDC is the console's OIDC client (console.oidc), or nil. The client secret is read
// now, from the environment or its file.
func (a *App) consoleOIDC(cfg *config.Config) (*console.OIDCOptions, error) {
	oc := cfg.Console.OIDC
	if !oc.On() {
		return nil, nil
	}
	secret := ""
	switch {
	case oc.ClientSecretEnv != "":
		if secret = os.Getenv(oc.ClientSecretEnv); secret == "" {
			return nil, fmt.Errorf("console.oidc.client_secret_env: %s is not set", oc.ClientSecretEnv)
		}
	case oc.ClientSecretFile != "":
		b, err := os.ReadFile(oc.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("console.oidc.client_secret_file: %w", err)
		}
		if secret = strings.TrimSpace(string(b)); secret == "" {
			return nil, fmt.Errorf("console.oidc.client_secret_file: %s is empty", oc.ClientSecretFile)
		}
	}
	roles := map[console.Role][]string{}
	for r, values := range oc.Roles {
		roles[console.Role(r)] = values
	}
	return &console.OIDCOptions{Issuer: oc.Issuer, Name: oc.Name, ClientID: oc.ClientID, ClientSecret: secret, RedirectURL: oc.RedirectURL,
		Scopes: oc.Scopes, SubjectClaim: oc.SubjectClaim, RoleClaim: oc.RoleClaim, Roles: roles, Auth: a.approvers,
		RefusedAudiences: func() []string {
			if st := a.rt.Load(); st != nil {
				return identity.DecisionAudiences(st.cfg.Identity, oc.Issuer)
			}
			return nil
		}}, nil
}

// resultPolicy says how tool results, notices, conversation content and tool definitions are
// treated under cfg: part of the hot-reloaded run-time state the guard reads.
func resultPolicy(cfg *config.Config) guard.ResultPolicy {
	return guard.ResultPolicy{BlockLevel: cfg.ResultBlock(), Redact: cfg.Inspection.RedactResults == nil || *cfg.Inspection.RedactResults,
		MaxBytes: int(cfg.Limits.MaxOutcomeResultBytes), DefinitionHold: cfg.MCP.DefinitionHold()}
}

// inspectMaxBytes is the inspection engine's input cap: at least its default, and at least
// limits.max_outcome_result_bytes, so that a result under the configured cap is inspected rather
// than capped (requests are bounded by limits.max_body_bytes before they reach inspection).
// inspectModel is the classifier configuration of inspection.model.
func inspectModel(cfg *config.Config) inspect.ModelConfig {
	m := cfg.Inspection.Model
	return inspect.ModelConfig{Disabled: !m.ModelEnabled(), Medium: m.Medium, High: m.High}
}

func inspectMaxBytes(cfg *config.Config) int {
	return int(max(cfg.Limits.MaxOutcomeResultBytes, guard.DefaultMaxResultBytes))
}

// Handler is the HTTP API.
func (a *App) Handler() http.Handler { return a.server.Handler() }

// Guard is the decision pipeline, for in-process transports.
func (a *App) Guard() *guard.Guard { return a.guard }

// ready: a policy set is loaded and the ledger can write.
func (a *App) ready() error {
	if st := a.rt.Load(); st == nil || st.policies == nil {
		return errors.New("no policy loaded")
	}
	if err := a.ledger.Err(); err != nil {
		return fmt.Errorf("ledger not writable: %w", err)
	}
	return a.stores.ping()
}

// degraded names the MCP upstreams that are down: the gateway decides, but their tools fail.
func (a *App) degraded() string {
	if a.mcp == nil {
		return ""
	}
	if down := a.mcp.Unavailable(); len(down) > 0 {
		return "mcp upstream down: " + strings.Join(down, "; ")
	}
	return ""
}

// nonceSweepInterval is how often the in-process nonce stores free expired nonces.
const nonceSweepInterval = 5 * time.Second

// Serve answers HTTP on ln until ctx ends, then shuts down gracefully: in-flight requests
// finish. It only serves: the background work runs from Open to Close, and Close writes the
// ledger's last checkpoint.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: time.Duration(a.cfg.Limits.ReadTimeoutSeconds) * time.Second, MaxHeaderBytes: a.cfg.Limits.MaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn), Protocols: server.Protocols(ln.Addr())}
	addr := ln.Addr().String()
	a.servedAddr.Store(&addr)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.log.Info("portcullis serving", slog.String("addr", ln.Addr().String()), slog.String("data_dir", a.cfg.DataDir))
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(a.cfg.Limits.ShutdownTimeoutSeconds)*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.log.Warn("http shutdown", slog.Any("error", err))
	}
	return nil
}

// Close stops every part in the reverse order Open provisioned them: the MCP upstreams, the
// background work, the reloader, then the ledger (its close writes a shutdown record and a final
// signed checkpoint), the stores, tracing, and last the data directory's lock.
func (a *App) Close(ctx context.Context) {
	a.closeOnce.Do(func() { a.parts.stop(ctx, a.log) })
}

func sensitive(extra []string) []string {
	if len(extra) == 0 {
		return nil // the ledger's defaults
	}
	return append(append([]string{}, ledger.DefaultSensitiveParams...), extra...)
}

// follow is a view of the ledger's store for one reader that follows the log: the records this
// process committed come from memory while it holds them, the rest (older ones, a replica's)
// from the store. Each reader has its own, since it remembers the size its reader last read.
func (a *App) follow() *ledger.Follower { return ledger.Follow(a.ledgerStore, a.recent) }
