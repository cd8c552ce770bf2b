package behavior_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/portcullis-ai/portcullis/internal/behavior"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

var ctx = context.Background()

func kinds(o *behavior.Observation) []string {
	var out []string
	for _, f := range o.Findings {
		out = append(out, f.Kind)
	}
	return out
}

func newTracker() *behavior.Tracker {
	return behavior.NewTracker(behavior.NewMemoryStore(behavior.MemoryOptions{}), behavior.Config{})
}

func observe(t *testing.T, tr *behavior.Tracker, agent, tool string, size int, windows ...time.Duration) *behavior.Observation {
	t.Helper()
	o, err := tr.Observe(ctx, behavior.Call{Agent: agent, Tool: tool, ParamSize: size}, windows)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// sleepUntil advances the bubble's fake clock to the next time of day h:m on a weekday in days.
func sleepUntil(at time.Time) { time.Sleep(time.Until(at)) }

func TestCallCountsSlide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := behavior.NewMemoryStore(behavior.MemoryOptions{})
		tr := behavior.NewTracker(st, behavior.Config{})
		hour := 60 * time.Minute
		// The seed's rule: more than 5 calls in 60 minutes.
		for i := 1; i <= 6; i++ {
			o := observe(t, tr, "report-generator", "export_customer_data", 10, hour)
			if n, ok := o.CallCount(hour); !ok || n != i {
				t.Fatalf("call %d: count %d, %v", i, n, ok)
			}
			time.Sleep(5 * time.Minute)
		}
		if _, ok := (&behavior.Observation{}).CallCount(hour); ok {
			t.Error("CallCount of an unrequested window reported ok")
		}
		// 30 minutes later than the last call, the first calls have slid out of the hour.
		time.Sleep(30*time.Minute - 5*time.Minute)
		n, err := st.Count(ctx, "report-generator", "export_customer_data", hour, time.Now())
		if err != nil || n != 6 {
			t.Fatalf("count after 55m: %d %v", n, err)
		}
		time.Sleep(10 * time.Minute) // 65 min after the first call: calls at 10..25 min remain
		n, _ = st.Count(ctx, "report-generator", "export_customer_data", hour, time.Now())
		if n != 4 {
			t.Errorf("count 65 minutes after the first call = %d, want 4", n)
		}
		time.Sleep(2 * hour)
		o := observe(t, tr, "report-generator", "export_customer_data", 10, hour, 24*hour)
		if diff := cmp.Diff(map[time.Duration]int{hour: 1, 24 * hour: 7}, o.Counts); diff != "" {
			t.Errorf("counts (-want +got):\n%s", diff)
		}
	})
}

// workWeek makes agent call tool every 5 minutes during Mon–Fri 09:00–17:00 UTC for the given
// number of weeks, starting at the bubble's current time (which must be a Monday 00:00 UTC).
func workWeek(t *testing.T, tr *behavior.Tracker, agent, tool string, weeks int) {
	start := time.Now()
	for w := range weeks {
		for d := range 5 {
			day := start.AddDate(0, 0, 7*w+d)
			sleepUntil(day.Add(9 * time.Hour))
			for range 8 * 12 {
				o := observe(t, tr, agent, tool, 400+int(time.Now().Unix()%50))
				if len(o.Findings) > 0 && o.Learned {
					t.Fatalf("routine call at %s flagged: %+v", time.Now().UTC(), o.Findings)
				}
				time.Sleep(5 * time.Minute)
			}
		}
	}
}

// mondayMidnight sleeps to the next Monday 00:00 UTC.
func mondayMidnight() {
	now := time.Now().UTC()
	days := (8 - int(now.Weekday())) % 7
	if days == 0 {
		days = 7
	}
	sleepUntil(time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, days))
}

func TestBaselineLearnedAndUnusualHour(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker()
		mondayMidnight()
		// Night-time call of a brand-new agent: no baseline, no finding.
		sleepUntil(time.Now().Add(3 * time.Hour))
		if o := observe(t, tr, "night-owl", "fetch", 400); o.Learned || o.UnusualHour || len(o.Findings) != 0 {
			t.Fatalf("new agent: %+v", o)
		}
		mondayMidnight()
		workWeek(t, tr, "reporter", "fetch", 1) // 480 calls, but over less than 7 days
		// Saturday 03:00: still not learned (the span is under 7 days).
		sleepUntil(time.Now().Add(-time.Duration(time.Now().Hour())*time.Hour + 24*time.Hour + 3*time.Hour))
		if o := observe(t, tr, "reporter", "fetch", 400); o.Learned {
			t.Fatalf("learned after %s", time.Now().UTC().Weekday())
		}
		mondayMidnight()
		workWeek(t, tr, "reporter", "fetch", 1)
		// Wednesday 03:00 of the third week: learned, and 03:00 is rare.
		mondayMidnight()
		sleepUntil(time.Now().Add(2*24*time.Hour + 3*time.Hour))
		o := observe(t, tr, "reporter", "fetch", 400)
		if !o.Learned || !o.UnusualHour {
			t.Fatalf("night call: learned %v unusual %v", o.Learned, o.UnusualHour)
		}
		if diff := cmp.Diff([]string{behavior.KindUnusualHour}, kinds(o)); diff != "" {
			t.Errorf("findings: %s", diff)
		}
		if o.Level != threat.Medium || o.Findings[0].Score != 1 || o.Findings[0].Path != "$" {
			t.Errorf("finding = %+v, level %v", o.Findings[0], o.Level)
		}
		// Wednesday 10:00: a usual hour.
		sleepUntil(time.Now().Add(7 * time.Hour))
		o = observe(t, tr, "reporter", "fetch", 400)
		if !o.Learned || o.UnusualHour || len(o.Findings) != 0 {
			t.Errorf("day call: %+v", o)
		}
	})
}

func TestBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker()
		mondayMidnight()
		workWeek(t, tr, "reporter", "fetch", 2) // one call per active minute
		mondayMidnight()
		sleepUntil(time.Now().Add(10 * time.Hour))
		// 29 calls within a minute: above 10× normal (10) but under the 30-call floor.
		var o *behavior.Observation
		for range 29 {
			o = observe(t, tr, "reporter", "fetch", 400)
			time.Sleep(time.Second)
		}
		if len(o.Findings) != 0 {
			t.Fatalf("29 calls flagged: %+v", o.Findings)
		}
		if o.AgentRecent != 29 {
			t.Errorf("AgentRecent = %d, want 29", o.AgentRecent)
		}
		o = observe(t, tr, "reporter", "fetch", 400)
		if diff := cmp.Diff([]string{behavior.KindBurst}, kinds(o)); diff != "" {
			t.Fatalf("30th call: %s", diff)
		}
		if o.Level != threat.High || o.Findings[0].Score != 0.5 { // exactly at the threshold
			t.Errorf("burst finding %+v level %v", o.Findings[0], o.Level)
		}
		// A minute of quiet later, the burst is over.
		time.Sleep(2 * time.Minute)
		if o = observe(t, tr, "reporter", "fetch", 400); len(o.Findings) != 0 {
			t.Errorf("after the burst: %+v", o.Findings)
		}
	})
}

func TestFirstUseAndLargeParams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker()
		// A brand-new agent's first tools are not news.
		if o := observe(t, tr, "a", "fetch", 500); len(o.Findings) != 0 {
			t.Fatalf("first call ever: %+v", o.Findings)
		}
		for i := range 40 {
			observe(t, tr, "a", "fetch", 480+(i%5)*10)
			time.Sleep(time.Minute)
		}
		o := observe(t, tr, "a", "delete_file", 10)
		if diff := cmp.Diff([]string{behavior.KindFirstUse}, kinds(o)); diff != "" || o.Level != threat.Low {
			t.Errorf("first use: %s level %v", diff, o.Level)
		}
		if o = observe(t, tr, "a", "delete_file", 10); len(o.Findings) != 0 {
			t.Errorf("second use: %+v", o.Findings)
		}
		tests := []struct {
			size int
			want []string
		}{
			{600, nil},  // a little larger than usual
			{1000, nil}, // 2× but under the 1 KiB floor
			{5000, []string{behavior.KindLargeParams}},
		}
		for _, tc := range tests {
			o := observe(t, tr, "a", "fetch", tc.size)
			if diff := cmp.Diff(tc.want, kinds(o)); diff != "" {
				t.Errorf("size %d: %s", tc.size, diff)
			}
		}
		// A tool that always gets empty parameters still flags a sudden megabyte.
		for range 30 {
			observe(t, tr, "b", "ping", 0)
		}
		if o := observe(t, tr, "b", "ping", 1<<20); o.Level != threat.Medium || o.Findings[0].Score != 1 {
			t.Errorf("megabyte to an empty-params tool: %+v", o.Findings)
		}
	})
}

type failingStore struct{ behavior.Store }

func (failingStore) Record(context.Context, behavior.Call, behavior.Query) (behavior.Snapshot, error) {
	return behavior.Snapshot{}, errors.New("connection refused")
}

func (failingStore) Count(context.Context, string, string, time.Duration, time.Time) (int, error) {
	return 0, errors.New("connection refused")
}

func TestStoreErrorsSurface(t *testing.T) {
	tr := behavior.NewTracker(failingStore{}, behavior.Config{})
	if o, err := tr.Observe(ctx, behavior.Call{Agent: "a", Tool: "t"}, []time.Duration{time.Hour}); err == nil || o != nil {
		t.Errorf("Observe on a failing store = %+v, %v; want an error", o, err)
	}
	if _, err := newTracker().Observe(ctx, behavior.Call{Agent: "a", Tool: "t"}, []time.Duration{48 * time.Hour}); !errors.Is(err, behavior.ErrWindow) {
		t.Errorf("oversized window: %v", err)
	}
	if _, err := newTracker().Observe(ctx, behavior.Call{Agent: "a", Tool: "t", ParamSize: -1}, nil); err == nil {
		t.Error("negative size accepted")
	}
}

func TestHourOfWeek(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want int
	}{
		{time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), 0},                     // Monday
		{time.Date(2026, 11, 23, 9, 59, 0, 0, time.UTC), 9},                    // Monday 09
		{time.Date(2026, 11, 29, 23, 0, 0, 0, time.UTC), 167},                  // Sunday 23
		{time.Date(2026, 11, 24, 1, 0, 0, 0, time.FixedZone("x", 2*3600)), 23}, // Tuesday 01:00+02 = Monday 23 UTC
	} {
		if got := behavior.HourOfWeek(tc.t); got != tc.want {
			t.Errorf("HourOfWeek(%s) = %d, want %d", tc.t, got, tc.want)
		}
	}
}

func FuzzObserve(f *testing.F) {
	f.Add("agent", "tool", 10, int64(0))
	f.Add("", "t", -5, int64(-1))
	f.Add("a", "t", 1<<30, int64(1)<<40)
	tr := newTracker()
	base := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, agent, tool string, size int, offset int64) {
		at := base.Add(time.Duration(offset % int64(365*24*time.Hour)))
		o, err := tr.Observe(ctx, behavior.Call{Agent: agent, Tool: tool, ParamSize: size, At: at}, []time.Duration{time.Hour})
		if err != nil {
			return
		}
		if n, _ := o.CallCount(time.Hour); n < 1 {
			t.Fatalf("count %d does not include the call", n)
		}
		for _, fd := range o.Findings {
			if fd.Score < 0 || fd.Score > 1 || fd.Severity > o.Level {
				t.Fatalf("finding %+v with level %v", fd, o.Level)
			}
		}
	})
}
