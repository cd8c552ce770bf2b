package app

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-ai/portcullis/internal/alert"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/export"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// AlertsStateFile keeps the next ledger seq the alert rules will read, in the data directory.
const AlertsStateFile = "alerts.seq"

// alertTick is how often the time-driven alert rules (an ageing approval, the flood summary)
// are evaluated.
const alertTick = 30 * time.Second

// alertVerifyInterval is how often the ledger is verified for the ledger_verification rule.
const alertVerifyInterval = 24 * time.Hour

// alertWebhookQueue bounds the alert notifications waiting for the webhook.
const alertWebhookQueue = 256

// alertKinds are the record kinds the rules read.
var alertKinds = []ledger.Kind{ledger.KindDecision, ledger.KindToolResult, ledger.KindApprovalRequested,
	ledger.KindApprovalResolved, ledger.KindApprovalConsumed, ledger.KindApprovalAborted, ledger.KindKeyRotation}

// openAlerts starts the alert rules: a ledger tailer (the export's, with its own state file)
// feeds the engine the committed records; each alert is appended to the ledger as an alert
// record and, when approvals.webhook is set, posted there signed. Nothing here is on the
// decision path.
func (a *App) openAlerts(ctx context.Context, cfg *config.Config, keys []string) error {
	if !cfg.Alerts.On() {
		return nil
	}
	ac := cfg.Alerts
	ecfg := alert.Config{Window: ac.Window, BaselineWindows: ac.BaselineWindows, SpikeFactor: ac.SpikeFactor,
		SpikeFloor: ac.SpikeFloor, NewToolAfter: ac.NewToolAfter, ErrorRate: ac.ErrorRate, ErrorMin: ac.ErrorMin,
		BacklogPending: ac.BacklogPending, BacklogAge: ac.BacklogAge, Cooldown: ac.Cooldown, MaxPerWindow: ac.MaxPerWindow}
	for _, r := range ac.Disabled {
		ecfg.Disabled = append(ecfg.Disabled, alert.Rule(r))
	}
	type note struct {
		seq  uint64
		body []byte
	}
	var notify chan note
	if a.webhook != nil && ac.WebhookOn() {
		notify = make(chan note, alertWebhookQueue)
		wh := a.webhook
		a.parts.background("alert webhook", func(ctx context.Context) {
			for {
				select {
				case <-ctx.Done():
					return
				case n := <-notify:
					if err := wh.Send(ctx, "alert", "alert."+strconv.FormatUint(n.seq, 10), n.body); err != nil && ctx.Err() == nil {
						a.log.Warn("alert notification failed; the alert is in the ledger", slog.Any("error", err))
					}
				}
			}
		})
	}
	consoleURL := ""
	if cfg.ConsoleOn() && cfg.Approvals.Webhook.ConsoleURL != "" {
		consoleURL = alertsPageURL(cfg.Approvals.Webhook.ConsoleURL, cfg.Console.Path)
	}
	deliver := func(ctx context.Context, alerts []alert.Alert) (int, error) {
		for i, al := range alerts {
			seq, err := a.ledger.Append(ctx, al.Record())
			if err != nil {
				// The runner keeps the rest and retries them; the ones recorded are not repeated.
				return i, fmt.Errorf("record alert %s: %w", al.Rule, err)
			}
			a.log.Warn("alert", slog.String("rule", string(al.Rule)), slog.String("agent", al.Agent), slog.String("tool", al.Tool),
				slog.String("message", al.Message), slog.Int("count", al.Count), slog.Uint64("seq", seq))
			if notify == nil {
				continue
			}
			body, err := al.WebhookPayload(seq, consoleURL)
			if err == nil {
				select {
				case notify <- note{seq, body}:
				default:
					a.log.Warn("alert webhook queue full; notification dropped, the alert is in the ledger", slog.Uint64("seq", seq))
				}
			}
		}
		return len(alerts), nil
	}
	runner := alert.NewRunner(alert.New(ecfg), deliver)
	t, err := export.New(ctx, export.Options{Name: "alerts", Store: a.follow(), Sink: runner, Kinds: alertKinds,
		StateFile: filepath.Join(cfg.DataDir, AlertsStateFile), Log: a.log})
	if err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	a.parts.background("alerts", t.Run)
	ro := alert.RunOptions{Tick: alertTick, OnError: func(err error) { a.log.Warn("alerts", slog.Any("error", err)) }}
	if !disabled(ac.Disabled, alert.RuleVerification) {
		_, opts := RetentionOptions(cfg, keys)
		ro.VerifyEvery = alertVerifyInterval
		ro.Verify = func(ctx context.Context) error {
			rep, err := ledger.Verify(ctx, a.ledgerStore, opts)
			if err == nil && !rep.Intact {
				err = fmt.Errorf("%s: %s", rep.Problem, rep.Reason)
			}
			return err
		}
	}
	a.parts.background("alert clock", func(ctx context.Context) { runner.Run(ctx, ro) })
	return nil
}

func disabled(rules []string, r alert.Rule) bool {
	for _, d := range rules {
		if d == string(r) {
			return true
		}
	}
	return false
}

// alertsPageURL is the console's alerts page under the origin of the approvals' console URL.
func alertsPageURL(approvalsURL, consolePath string) string {
	origin := approvalsURL
	if i := strings.Index(origin, "://"); i >= 0 {
		if j := strings.IndexByte(origin[i+3:], '/'); j >= 0 {
			origin = origin[:i+3+j]
		}
	}
	return origin + strings.TrimRight(consolePath, "/") + "/alerts"
}
