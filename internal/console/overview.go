package console

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// overviewHours is the span the overview charts.
const overviewHours = 24

// outcomes are the decisions the overview charts, in stacking order.
var outcomes = []string{"allow", "log", "constrain", "deny"}

type bar struct {
	X, Y, W, H int
	Class      string
	Label      string
}

type toolCount struct {
	Tool  string
	Count int
}

type overviewData struct {
	Pending int
	// Alerts counts the alerts of the last day, shown to those who may read the alerts page.
	Alerts     int
	ShowAlerts bool
	Totals     map[string]int
	Bars       []bar
	MaxHour    int
	TopDenied  []toolCount
	Truncated  bool
	Since      time.Time
}

// overview counts the decisions p may see in the last day, per hour and outcome, and the tools
// denied most, from the newest records back (at most overviewBudget of them).
func (c *Console) overview(ctx context.Context, p Principal) (overviewData, error) {
	now := c.o.Now()
	since := now.Add(-overviewHours * time.Hour).Truncate(time.Hour)
	d := overviewData{Totals: map[string]int{}, Since: since}
	perHour := make([]map[string]int, overviewHours+1)
	for i := range perHour {
		perHour[i] = map[string]int{}
	}
	denied := map[string]int{}
	d.ShowAlerts = p.readsAll()
	truncated, err := c.scanBack(ctx, since, statsBudget, func(_ uint64, r *stat) {
		if r.Kind == ledger.KindAlert {
			d.Alerts++
			return
		}
		if r.Kind != ledger.KindDecision || !slices.Contains(outcomes, r.Decision) || !p.sees(r.Agent.ID, r.Tool) {
			return
		}
		h := min(max(int(r.Time.Sub(since)/time.Hour), 0), overviewHours)
		perHour[h][r.Decision]++
		d.Totals[r.Decision]++
		if r.Decision == "deny" {
			denied[r.Tool]++
		}
	})
	if err != nil {
		return d, err
	}
	d.Truncated = truncated
	for _, m := range perHour {
		n := 0
		for _, v := range m {
			n += v
		}
		d.MaxHour = max(d.MaxHour, n)
	}
	// The chart: one column per hour, outcomes stacked, 600×160 drawing units.
	const width, height, gap = 600, 160, 2
	colW := width/(overviewHours+1) - gap
	for i, m := range perHour {
		y := height
		for _, o := range outcomes {
			if m[o] == 0 || d.MaxHour == 0 {
				continue
			}
			h := max(1, m[o]*height/d.MaxHour)
			y -= h
			d.Bars = append(d.Bars, bar{X: i * (colW + gap), Y: y, W: colW, H: h, Class: o,
				Label: since.Add(time.Duration(i)*time.Hour).UTC().Format("15:04") + " " + o})
		}
	}
	d.TopDenied = topCounts(denied, 10)
	reqs, err := c.o.Queue.List(ctx, approval.Filter{States: []approval.State{approval.Pending}, Limit: queueLimit, Visible: p.sees})
	if err != nil {
		return d, err
	}
	d.Pending = len(reqs)
	return d, nil
}

func (c *Console) overviewPage(w http.ResponseWriter, r *http.Request, s *session, p Principal) {
	d, err := c.overview(r.Context(), p)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, "The ledger cannot be read right now.")
		return
	}
	c.render(w, r, http.StatusOK, "overview", view{Title: "Overview", Nav: "overview", P: &p, CSRF: s.csrf, Data: d})
}
