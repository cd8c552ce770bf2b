package compliance

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"time"
)

//go:embed templates/report.html
var templates embed.FS

var reportTmpl = template.Must(template.New("report.html").Funcs(template.FuncMap{
	"date": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"ms":   func(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() },
}).ParseFS(templates, "templates/report.html"))

// bar is one stacked segment of the daily chart, in SVG user units.
type bar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

type chart struct {
	W, H   float64
	Bars   []bar
	Labels []bar // X, Y and Title only
	Max    int
}

// dailyChart lays out the decisions per day as stacked bars: deny at the bottom, then
// constrain, log and allow. The geometry is computed here so the template only draws.
func dailyChart(days []Day) chart {
	const w, h, top, bottom = 720.0, 220.0, 10.0, 30.0
	c := chart{W: w, H: h}
	for _, d := range days {
		c.Max = max(c.Max, d.Allow+d.Deny+d.Constrain+d.Log)
	}
	if len(days) == 0 || c.Max == 0 {
		return c
	}
	slot := w / float64(len(days))
	bw := min(40, max(1, slot*0.7)) // a short period must not draw one wide slab
	scale := (h - top - bottom) / float64(c.Max)
	every := max(1, len(days)/8)
	for i, d := range days {
		x := float64(i)*slot + (slot-bw)/2
		y := h - bottom
		for _, s := range []struct {
			n     int
			class string
		}{{d.Deny, "deny"}, {d.Constrain, "constrain"}, {d.Log, "log"}, {d.Allow, "allow"}} {
			if s.n == 0 {
				continue
			}
			bh := float64(s.n) * scale
			y -= bh
			c.Bars = append(c.Bars, bar{X: x, Y: y, W: bw, H: bh, Class: s.class, Title: fmt.Sprintf("%s: %d %s", d.Date, s.n, s.class)})
		}
		if i%every == 0 {
			c.Labels = append(c.Labels, bar{X: x + bw/2, Y: h - bottom + 16, Title: d.Date})
		}
	}
	return c
}

// WriteHTML renders the report as one self-contained, printable HTML page (inline CSS and SVG,
// no scripts, no external assets).
func WriteHTML(w io.Writer, rep *Report) error {
	return reportTmpl.Execute(w, struct {
		*Report
		Chart chart
	}{rep, dailyChart(rep.Days)})
}
