package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"runtime"
	"strconv"
)

// series is one line of a panel: its name, colour and value at each sample.
type series struct {
	name, colour string
	value        func(prev, s sample) float64
}

// panel is one chart of the stack: the lines in it share its vertical axis, which starts at zero
// so that flat looks flat and a rise is read against the whole value.
type panel struct {
	title string
	lines []series
}

var panels = []panel{
	{"memory, MB", []series{
		{"RSS", "#1f77b4", func(_, s sample) float64 { return s.rss / 1e6 }},
		{"Go heap in use", "#ff7f0e", func(_, s sample) float64 { return s.heap / 1e6 }},
	}},
	{"goroutines and open files", []series{
		{"goroutines", "#2ca02c", func(_, s sample) float64 { return s.goroutines }},
		{"open files", "#d62728", func(_, s sample) float64 { return s.openFiles }},
	}},
	{"ledger on disk, MB", []series{
		{"ledger.db", "#9467bd", func(_, s sample) float64 { return float64(s.ledger) / 1e6 }},
		{"WAL", "#8c564b", func(_, s sample) float64 { return float64(s.wal) / 1e6 }},
	}},
	{"requests sent per second, and dropped", []series{
		{"sent/s", "#17becf", func(p, s sample) float64 { return rate(p, s, s.requests-p.requests) }},
		{"dropped/s", "#e377c2", func(p, s sample) float64 { return rate(p, s, s.dropped-p.dropped) }},
	}},
	{"machine load average (1 min; " + strconv.Itoa(runtime.NumCPU()) + " cores)", []series{
		{"load", "#7f7f7f", func(_, s sample) float64 { return s.load }},
	}},
}

func rate(p, s sample, n int64) float64 {
	if d := (s.at - p.at).Seconds(); d > 0 {
		return float64(n) / d
	}
	return 0
}

// chart draws every sample (warm-up shaded) as a stack of panels sharing the time axis.
func chart(s []sample, c config) []byte {
	const (
		width, left, right = 760.0, 70.0, 170.0
		ph, gap, top       = 120.0, 42.0, 46.0
	)
	plotW := width - left - right
	height := top + float64(len(panels))*(ph+gap) + 10
	end := s[len(s)-1].at.Minutes()
	if end <= 0 {
		end = 1
	}
	x := func(min float64) float64 { return left + plotW*min/end }
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="14">%s</text>`+"\n", left,
		html.EscapeString(fmt.Sprintf("Portcullis soak: %d requests/s asked for %s, a sample every %s (shaded: warm-up)", c.rate, c.duration, c.interval)))
	for i, p := range panels {
		y0 := top + float64(i)*(ph+gap)
		hi := 0.0
		for j := range s {
			for _, l := range p.lines {
				hi = max(hi, l.value(prevOf(s, j), s[j]))
			}
		}
		hi = niceCeil(hi)
		y := func(v float64) float64 { return y0 + ph - ph*v/hi }
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-weight="bold">%s</text>`+"\n", left, y0-6, html.EscapeString(p.title))
		if w := min(c.warmup.Minutes(), end); w > 0 {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#eeeeee"/>`+"\n", left, y0, x(w)-left, ph)
		}
		for k := 0; k <= 4; k++ {
			v := hi * float64(k) / 4
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#dddddd"/>`, left, left+plotW, y(v), y(v))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-4, y(v)+4, label(v))
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888888"/>`+"\n", left, y0, plotW, ph)
		for li, l := range p.lines {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="`, l.colour)
			for j := range s {
				fmt.Fprintf(&b, "%.1f,%.1f ", x(s[j].at.Minutes()), y(l.value(prevOf(s, j), s[j])))
			}
			b.WriteString(`"/>` + "\n")
			ly := y0 + 14 + float64(li)*16
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`, left+plotW+10, left+plotW+26, ly-4, ly-4, l.colour)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", left+plotW+30, ly, html.EscapeString(l.name))
		}
		for m := 0.0; m <= end; m += tickStep(end) {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x(m), y0+ph+13, label(m))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="start">min</text>`+"\n", left+plotW+4, y0+ph+13)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// prevOf is the sample before j; before the first, the start (zero counts at zero time).
func prevOf(s []sample, j int) sample {
	if j == 0 {
		return sample{}
	}
	return s[j-1]
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, so the axis reads in round numbers.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func tickStep(end float64) float64 {
	return max(niceCeil(end/8), 0.1)
}

func label(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
