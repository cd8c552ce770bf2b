package app

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/identity"
)

// swappableAuth serves the identity configuration current at this moment: a configuration reload
// builds a new Verifier off to the side and swaps it in; in-flight checks finish on the old one.
type swappableAuth struct {
	cur    atomic.Pointer[identity.Verifier]
	stop   atomic.Pointer[context.CancelFunc]
	keys   identity.KeyStore
	nonces identity.NonceStore
	log    *slog.Logger
}

func (s *swappableAuth) Verify(ctx context.Context, c identity.Credentials) (*identity.Agent, error) {
	return s.cur.Load().Verify(ctx, c)
}

func (s *swappableAuth) User(ctx context.Context, agent *identity.Agent, token string, asserted *identity.AssertedUser) (*identity.User, error) {
	return s.cur.Load().User(ctx, agent, token, asserted)
}

// load compiles cfg into a Verifier, starts its background JWKS refresh and swaps it in.
func (s *swappableAuth) load(ctx context.Context, cfg identity.Config) error {
	v, err := s.build(cfg)
	if err != nil {
		return err
	}
	s.swap(ctx, v)
	return nil
}

// build compiles cfg into a Verifier without serving it.
func (s *swappableAuth) build(cfg identity.Config) (*identity.Verifier, error) {
	v, err := identity.New(cfg, identity.Options{Keys: s.keys, Nonces: s.nonces, Logger: s.log})
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return v, nil
}

// swap starts v's background JWKS refresh and serves it from now on.
func (s *swappableAuth) swap(ctx context.Context, v *identity.Verifier) {
	vctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	v.Start(vctx)
	s.cur.Store(v)
	if old := s.stop.Swap(&cancel); old != nil {
		(*old)()
	}
}

// watchConfig reloads the configuration file when it changes. What can change at run time —
// agents, roles, issuers, approvers and their logins, tool classifications — is swapped in; a
// change to anything else (listen address, data directory, policies, limits) is reported as
// needing a restart. A file with any error is rejected whole and the running configuration keeps
// serving.
func (a *App) watchConfig(ctx context.Context) {
	if a.cfgPath == "" {
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		a.log.Error("config watch unavailable", slog.Any("error", err))
		return
	}
	defer w.Close()
	// Watch the directory: editors replace files by rename, which a file watch would lose.
	if err := w.Add(filepath.Dir(a.cfgPath)); err != nil {
		a.log.Error("config watch unavailable", slog.Any("error", err))
		return
	}
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-w.Events:
			if filepath.Clean(ev.Name) == filepath.Clean(a.cfgPath) {
				debounce = time.After(150 * time.Millisecond)
			}
		case err := <-w.Errors:
			a.log.Error("config watch", slog.Any("error", err))
		case <-debounce:
			debounce = nil
			a.reloadConfig(ctx)
		}
	}
}

func (a *App) reloadConfig(ctx context.Context) {
	next, err := config.Load(a.cfgPath)
	if err != nil {
		a.metrics.ReloadErrors.Inc()
		a.log.Error("configuration reload rejected; the previous configuration keeps serving", slog.Any("error", err))
		return
	}
	// The decision path's identity and the approvers' logins are built before either is served:
	// the logins refuse the audiences of the identity they were built with, so the two are
	// swapped together or not at all.
	v, err := a.auth.build(next.Identity)
	if err == nil {
		var l *identity.ApproverLogins
		if l, err = a.approvers.build(next); err == nil {
			a.auth.swap(ctx, v)
			a.approvers.swap(ctx, l, next.Approvals.Approvers)
		}
	}
	if err != nil {
		a.metrics.ReloadErrors.Inc()
		a.log.Error("configuration reload rejected; the previous configuration keeps serving", slog.Any("error", err))
		return
	}
	classes := map[string]string{}
	for name, t := range next.Tools {
		classes[name] = t.Classification
	}
	a.guard.SetToolClassifications(classes)
	cur := *a.cfg
	cur.Identity, cur.Tools, cur.Approvals.Approvers, cur.Approvals.Logins = next.Identity, next.Tools, next.Approvals.Approvers, next.Approvals.Logins
	if !reflect.DeepEqual(&cur, next) {
		a.log.Warn("configuration changed beyond identity and tools; restart to apply the rest")
	}
	a.cfg.Identity, a.cfg.Tools, a.cfg.Approvals.Approvers, a.cfg.Approvals.Logins = next.Identity, next.Tools, next.Approvals.Approvers, next.Approvals.Logins
	a.log.Info("configuration reloaded")
}
