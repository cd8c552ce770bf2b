package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/policy"
	"github.com/portcullis-ai/portcullis/internal/watch"
)

// runtimeState is everything a reload replaces, built off to the side and swapped in as one
// pointer: a request sees either the old configuration and policy or the new, never a mix, and
// nothing a request reads is ever written in place. Never modified after the swap.
type runtimeState struct {
	// cfg is the configuration in force: the startup values of what needs a restart, the
	// reloaded identity, tools and approvers.
	cfg      *config.Config
	verifier *identity.Verifier
	// logins verify approvers' tokens; built with the identity above, whose audiences they
	// refuse, so the two are only ever served together.
	logins   *identity.ApproverLogins
	stop     func() // ends the JWKS refresh of verifier and logins, and waits for it
	policies *policy.Set
	// file is the configuration file as last read, before any command-line override: a reload
	// compares the file with the file, so that a --listen flag is not taken for a change.
	file      *config.Config
	classes   map[string]string
	approvers map[string]config.ApproverConfig // exact ID → approver
	// results is the guard's result policy (guard.Options.ResultPolicyFrom).
	results guard.ResultPolicy
}

// The reloader's timing: a set is read after settle quiet, then again settle later, and loaded
// only when both reads agree; the periodic check catches what no event announces. Variables so
// tests can shorten them.
var (
	reloadSettle = 250 * time.Millisecond
	reloadPoll   = 5 * time.Second
)

// Errors the reloader reports, told apart for the log and the metric.
var (
	errConfigRejected = errors.New("configuration reload rejected; the previous configuration and policy keep serving")
	errPolicyRejected = errors.New("policy reload rejected; the previous policy keeps serving")
)

// swappableAuth serves the identity configuration of the runtime state in force: in-flight
// checks finish on the verifier they started with.
type swappableAuth struct{ rt *atomic.Pointer[runtimeState] }

func (s swappableAuth) current() *identity.Verifier { return s.rt.Load().verifier }

func (s swappableAuth) Verify(ctx context.Context, c identity.Credentials) (*identity.Agent, error) {
	return s.current().Verify(ctx, c)
}

func (s swappableAuth) User(ctx context.Context, agent *identity.Agent, token string, asserted *identity.AssertedUser) (*identity.User, error) {
	return s.current().User(ctx, agent, token, asserted)
}

// currentPolicies serves the policy set of the runtime state in force (guard.Policies).
type currentPolicies struct{ rt *atomic.Pointer[runtimeState] }

func (p currentPolicies) Current() *policy.Set { return p.rt.Load().policies }

// startReloader loads the policy set and builds the first runtime state from cfg, then watches the
// configuration file and the policy paths with one reloader (package watch): a change is loaded
// only when every file is closed by its writer and reads the same twice across the settle
// interval, and configuration and policy are swapped together. What can change at run time —
// agents, roles, issuers, tool classifications, approvers and their logins, the result policy
// (inspection.result_block_level, inspection.redact_results), policies — is swapped in; a change to
// anything else (listen address, data directory, the policy paths, limits) is reported as needing
// a restart. A set with any error is rejected whole and the running one keeps serving.
func (a *App) startReloader(ctx context.Context, cfg *config.Config) error {
	bg := context.WithoutCancel(ctx)
	dirs, err := policy.WatchDirs(cfg.Policies)
	if err != nil {
		return fmt.Errorf("load policies: %w", err)
	}
	cfgPath := ""
	if a.cfgPath != "" {
		cfgPath = filepath.Clean(a.cfgPath)
		dirs = append(dirs, filepath.Dir(cfgPath))
	}
	initial := true
	a.reloader, err = watch.New(watch.Options{
		Dirs: dirs,
		Relevant: func(name string) bool {
			return (cfgPath != "" && filepath.Clean(name) == cfgPath) || policy.Relevant(cfg.Policies, name)
		},
		Read: func() (watch.Snapshot, error) {
			snap, err := policy.ReadSnapshot(cfg.Policies)
			if err != nil || cfgPath == "" {
				return snap, err
			}
			data, err := os.ReadFile(cfgPath)
			if err != nil {
				return nil, err
			}
			// The configuration file goes first, so apply can tell it from the policies.
			return append(watch.Snapshot{{Name: cfgPath, Data: data}}, snap...), nil
		},
		Apply: func(snap watch.Snapshot) error {
			if initial {
				return a.applyInitial(bg, cfg, snap, cfgPath != "")
			}
			return a.apply(bg, snap, cfgPath != "")
		},
		OnError: a.reloadError,
		Settle:  reloadSettle,
		Poll:    reloadPoll,
	})
	initial = false
	if err != nil {
		return err
	}
	return a.startShadowReloader(cfg)
}

// shadowPolicies serves the candidate set (guard.Options.Shadow); nil: none loaded.
type shadowPolicies struct{ p *atomic.Pointer[policy.Set] }

func (s shadowPolicies) Current() *policy.Set { return s.p.Load() }

// startShadowReloader loads and watches the candidate set of shadow_policies, if any. A candidate
// that does not load refuses the start (the operator asked for it); a bad reload keeps the
// previous candidate, is reported like a rejected policy reload, and never touches the enforced set.
func (a *App) startShadowReloader(cfg *config.Config) error {
	paths := cfg.ShadowPolicies
	if len(paths) == 0 {
		return nil
	}
	dirs, err := policy.WatchDirs(paths)
	if err != nil {
		return fmt.Errorf("load shadow policies: %w", err)
	}
	initial := true
	a.shadowReloader, err = watch.New(watch.Options{
		Dirs:     dirs,
		Relevant: func(name string) bool { return policy.Relevant(paths, name) },
		Read:     func() (watch.Snapshot, error) { return policy.ReadSnapshot(paths) },
		Apply: func(snap watch.Snapshot) error {
			set, err := policy.LoadSources(policy.Sources(snap))
			if err != nil {
				if initial {
					return fmt.Errorf("load shadow policies: %w", err)
				}
				return fmt.Errorf("%w: shadow: %w", errPolicyRejected, err)
			}
			a.shadow.Store(set)
			if !initial {
				a.log.Info("shadow policy reloaded", slog.Int("rules", set.RuleCount()), slog.String("version", guard.Version(set)))
			}
			return nil
		},
		OnError: a.reloadError,
		Settle:  reloadSettle,
		Poll:    reloadPoll,
	})
	initial = false
	return err
}

// applyInitial builds the first state from the configuration the caller loaded (and possibly
// adjusted) and the policy files as read.
func (a *App) applyInitial(ctx context.Context, cfg *config.Config, snap watch.Snapshot, hasCfg bool) error {
	file := cfg
	if hasCfg {
		if f, err := config.LoadData(snap[0].Name, snap[0].Data); err == nil {
			file = f
		}
		snap = snap[1:]
	}
	set, err := policy.LoadSources(policy.Sources(snap))
	if err != nil {
		return fmt.Errorf("load policies: %w: %w", policy.ErrNoSet, err)
	}
	st, err := a.newState(ctx, cfg, set)
	if err != nil {
		return err
	}
	st.file = file
	a.rt.Store(st)
	return nil
}

// reloadable are the configuration's keys a reload applies; a change anywhere else needs a restart.
var reloadable = []string{"identity", "tools", "approvals.approvers", "approvals.issuers", "approvals.id_claim",
	"inspection.result_block_level", "inspection.redact_results"}

// needRestart names the keys changed between two readings of the file that a reload does not apply.
func needRestart(before, after *config.Config) []string {
	var out []string
	for _, k := range config.Changed(before, after) {
		if !slices.ContainsFunc(reloadable, func(r string) bool { return k == r || strings.HasPrefix(k, r+".") }) {
			out = append(out, k)
		}
	}
	return out
}

// apply builds the next state from a stable snapshot and swaps it in whole, or rejects it whole.
func (a *App) apply(ctx context.Context, snap watch.Snapshot, hasCfg bool) error {
	cur := a.rt.Load()
	next, file := *cur.cfg, cur.file
	var restart []string
	if hasCfg {
		loaded, err := config.LoadData(snap[0].Name, snap[0].Data)
		if err != nil {
			return fmt.Errorf("%w: %w", errConfigRejected, err)
		}
		next.Identity, next.Tools, next.Approvals.Approvers, next.Approvals.Logins = loaded.Identity, loaded.Tools, loaded.Approvals.Approvers, loaded.Approvals.Logins
		// The result policy is guard state: how results are blocked and redacted changes with
		// the file (the result size cap sizes the inspector, and needs a restart).
		next.Inspection.ResultBlockLevel, next.Inspection.RedactResults = loaded.Inspection.ResultBlockLevel, loaded.Inspection.RedactResults
		restart, file = needRestart(cur.file, loaded), loaded
		snap = snap[1:]
	}
	set, err := policy.LoadSources(policy.Sources(snap))
	if err != nil {
		return fmt.Errorf("%w: %w", errPolicyRejected, err)
	}
	st, err := a.newState(ctx, &next, set)
	if err != nil {
		return fmt.Errorf("%w: %w", errConfigRejected, err)
	}
	st.file = file
	a.rt.Store(st)
	cur.stop() // in-flight checks hold the old verifier and logins; only their background refresh ends
	if len(restart) > 0 {
		// Said once per change: the next reload compares with this reading of the file.
		a.log.Warn("configuration changed where a reload does not apply it; restart to apply these keys", slog.Any("keys", restart))
	}
	if len(set.Agents()) == 0 {
		// Applied, not refused: denying everything is the fail-closed reading of "no policy".
		a.log.Warn("the reloaded policy set holds no policy: every call is denied")
	}
	a.log.Info("configuration and policy reloaded", slog.Int("rules", set.RuleCount()), slog.String("version", guard.Version(set)))
	return nil
}

// newState compiles cfg's run-time parts; the verifier's JWKS refresh starts here.
func (a *App) newState(ctx context.Context, cfg *config.Config, set *policy.Set) (*runtimeState, error) {
	v, err := identity.New(cfg.Identity, identity.Options{Keys: a.keys, Nonces: a.stores.nonces, Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	l, err := identity.NewApproverLogins(cfg.Approvals.Logins, cfg.Identity, identity.Options{Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("approvals: %w", err)
	}
	bg, cancel := context.WithCancel(ctx)
	waitV, waitL := v.Start(bg), l.Start(bg)
	stop := func() { cancel(); waitV(); waitL() } // returns once every refresh has ended
	classes := make(map[string]string, len(cfg.Tools))
	for name, t := range cfg.Tools {
		classes[name] = t.Classification
	}
	appr := make(map[string]config.ApproverConfig, len(cfg.Approvals.Approvers))
	for _, ap := range cfg.Approvals.Approvers {
		appr[ap.ID] = ap
	}
	return &runtimeState{cfg: cfg, verifier: v, logins: l, stop: stop, policies: set, classes: classes, approvers: appr,
		results: resultPolicy(cfg)}, nil
}

// reload reads and applies the configuration and policies now, stable or not: an operator asked.
func (a *App) reload() error { return a.reloader.Reload() }

func (a *App) reloadError(err error) {
	switch {
	case errors.Is(err, watch.ErrWriterOpen):
		a.log.Warn("reload waiting", slog.Any("error", err))
		return
	case errors.Is(err, errConfigRejected):
		a.log.Error(errConfigRejected.Error(), slog.Any("error", err))
	case errors.Is(err, errPolicyRejected):
		a.log.Error(errPolicyRejected.Error(), slog.Any("error", err))
	default:
		a.log.Error("configuration and policy watch", slog.Any("error", err))
	}
	a.metrics.ReloadErrors.Inc()
}
