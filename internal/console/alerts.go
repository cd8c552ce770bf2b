package console

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// alertWindow is the span the alerts page lists; alertRows bounds the list.
const (
	alertWindow = 7 * 24 * time.Hour
	alertRows   = 200
)

// alertRow is one alert record.
type alertRow struct {
	Seq         uint64
	Time        time.Time
	Rule        string
	Severity    string
	Agent, Tool string
	Message     string
	Count       int
}

type alertsData struct {
	Alerts    []alertRow
	More      bool // more alerts in the window than listed
	Truncated bool
	Since     time.Time
}

// alerts lists the alert records since since, newest first (at most alertRows).
func (c *Console) alerts(ctx context.Context, since time.Time) (d alertsData, err error) {
	d.Since = since
	var chunk []alertRow
	d.Truncated, err = c.scanBack(ctx, since, statsBudget, func(seq uint64, r *stat) {
		if r.Kind != ledger.KindAlert || r.Alert == nil {
			return
		}
		chunk = append(chunk, alertRow{Seq: seq, Time: r.Time, Rule: r.Alert.Rule, Severity: r.Alert.Severity,
			Agent: r.Agent.ID, Tool: r.Tool, Message: r.Message, Count: r.Alert.Count})
	})
	// scanBack walks chunks newest first, records within a chunk oldest first: newest first.
	slices.SortFunc(chunk, func(a, b alertRow) int { return cmp.Compare(b.Seq, a.Seq) })
	if len(chunk) > alertRows {
		chunk, d.More = chunk[:alertRows], true
	}
	d.Alerts = chunk
	return d, err
}

// alertsPage lists the alerts of the last week to auditors and admins: alerts are about every
// agent, so an approver, who sees only its scopes, does not get the page.
func (c *Console) alertsPage(w http.ResponseWriter, r *http.Request, s *session, p Principal) {
	if !c.allowRole(w, r, p.readsAll()) {
		return
	}
	d, err := c.alerts(r.Context(), c.o.Now().Add(-alertWindow))
	if err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelError, "console: alerts", slog.Any("error", err))
		c.fail(w, r, http.StatusServiceUnavailable, "The ledger cannot be read right now.")
		return
	}
	c.render(w, r, http.StatusOK, "alerts", view{Title: "Alerts", Nav: "alerts", P: &p, CSRF: s.csrf, Data: d})
}
