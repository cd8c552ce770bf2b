package compare

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Request is an engine-neutral tool call: what every engine's input is built from.
// Parameter values are int64, string or bool (bool stands for "a value of the wrong type").
type Request struct {
	Tool   string
	Params map[string]any
	Time   time.Time
}

// randSource wraps a deterministic generator so scenarios can share helpers.
type randSource struct{ *rand.Rand }

func newRand(seed uint64) *randSource {
	return &randSource{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Requests returns n random requests for s, deterministic in seed.
func (s *Scenario) Requests(n int, seed uint64) []Request {
	r := newRand(seed)
	out := make([]Request, n)
	for i := range out {
		out[i] = s.gen(r)
	}
	return out
}

// number draws a value for a numeric parameter bounded by max: mostly in range, often exactly at
// or one past the bound, sometimes negative, of the wrong type, or missing (ok=false).
func (r *randSource) number(max int64) (any, bool) {
	switch r.IntN(12) {
	case 0:
		return max, true
	case 1:
		return max + 1, true
	case 2:
		return nil, false
	case 3:
		return fmt.Sprint(r.Int64N(max + 1)), true // a numeral as a string: wrong type
	case 4:
		return -r.Int64N(100), true
	case 5:
		return true, true
	default:
		return r.Int64N(2*max + 2), true
	}
}

func (r *randSource) pick(xs []string) string { return xs[r.IntN(len(xs))] }

// seedTime is a random instant in 2026, biased toward the window edges in New York and the two
// DST change days, so that 08:59/09:00/16:59/17:00 local are all exercised.
func (r *randSource) seedTime() time.Time {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic(err)
	}
	days := []time.Time{
		time.Date(2026, 3, 8, 0, 0, 0, 0, ny),  // spring forward
		time.Date(2026, 11, 1, 0, 0, 0, 0, ny), // fall back
		time.Date(2026, 6, 15, 0, 0, 0, 0, ny),
		time.Date(2026, 1, 20, 0, 0, 0, 0, ny),
	}
	if r.IntN(3) == 0 {
		return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(365*24*3600)) * time.Second)
	}
	d := days[r.IntN(len(days))]
	edges := []int{8*60 + 59, 9 * 60, 16*60 + 59, 17 * 60, r.IntN(24 * 60)}
	m := edges[r.IntN(len(edges))]
	return time.Date(d.Year(), d.Month(), d.Day(), m/60, m%60, r.IntN(60), 0, ny).UTC()
}

var seedTools = []string{"fetch_sales_data", "fetch_customer_names", "save_report", "delete_file", "export_customer_data", "fetch_sales_datax"}

func genSeed(r *randSource) Request {
	req := Request{Tool: r.pick(seedTools), Params: map[string]any{}, Time: r.seedTime()}
	set := func(k string, bound int64) {
		if v, ok := r.number(bound); ok {
			req.Params[k] = v
		}
	}
	// Every request carries every parameter family, so a tool sees both its own and foreign ones.
	if r.IntN(8) != 0 {
		req.Params["query_type"] = r.pick([]string{"monthly", "quarterly", "annual", "weekly", "Monthly", "monthly\n", "", "annually"})
	}
	set("date_range_days", 90)
	set("limit", 1000)
	if r.IntN(8) != 0 {
		req.Params["file_path"] = r.pick([]string{
			"/reports/q1.pdf", "/reports/sales_2026-q1.pdf", "/reports/../etc/passwd.pdf", "/reports/Q1.pdf",
			"/reports/.pdf", "/reports/a.pdf.exe", "/tmp/a.pdf", "/reports/a/b.pdf", "x/reports/a.pdf", "/reports/a.pdf\n",
		})
	}
	set("file_size_bytes", 10485760)
	return req
}

func genExact(r *randSource, n int) Request {
	req := Request{Params: map[string]any{}, Time: time.Unix(1_780_000_000+r.Int64N(1e7), 0).UTC()}
	if r.IntN(10) == 0 {
		req.Tool = fmt.Sprintf("tool_%05d", n+r.IntN(1000)) // no rule names it
	} else {
		req.Tool = exactTool(r.IntN(n))
	}
	if v, ok := r.number(int64(r.IntN(100) + 1)); ok {
		req.Params["limit"] = v
	}
	if r.IntN(4) != 0 {
		req.Params["region"] = r.pick([]string{"us", "eu", "apac", "EU", "eu-west"})
	}
	return req
}

func genRegex(r *randSource, n int) Request {
	req := Request{Params: map[string]any{}, Time: time.Unix(1_780_000_000+r.Int64N(1e7), 0).UTC()}
	req.Tool = fmt.Sprintf("ns%03d_%s_%s", r.IntN(n+n/10), r.pick([]string{"read", "list", "get", "write", "delete"}),
		r.pick([]string{"sales", "admin", "users", "x_admin", "admin2"}))
	if r.IntN(20) == 0 {
		req.Tool = "other_tool"
	}
	if v, ok := r.number(int64(r.IntN(200) + 1)); ok {
		req.Params["limit"] = v
	}
	return req
}
