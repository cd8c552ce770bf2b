package policy

import (
	"math"
	"sync/atomic"
	"time"
)

// zoneClock converts instants to local wall-clock minutes and weekdays in one location without
// time.Time.In on the hot path: it remembers the zone period (offset and its validity range)
// of the last instant it saw, so a lookup is an atomic load and integer arithmetic. Misses
// (an instant in another period, e.g. across a DST change) recompute and replace the period.
type zoneClock struct {
	loc *time.Location
	cur atomic.Pointer[zonePeriod]
}

type zonePeriod struct {
	start, end int64 // unix seconds, [start, end)
	offset     int64 // seconds east of UTC
}

func newZoneClock(loc *time.Location) *zoneClock { return &zoneClock{loc: loc} }

// local returns the minute of the day (0..1439) and the weekday of t in the clock's location.
func (z *zoneClock) local(t time.Time) (Clock, time.Weekday) {
	sec := t.Unix()
	p := z.cur.Load()
	if p == nil || sec < p.start || sec >= p.end {
		p = z.period(t)
		z.cur.Store(p)
	}
	s := sec + p.offset
	days := floorDiv(s, 86400)
	min := Clock((s - days*86400) / 60)
	// 1970-01-01 was a Thursday.
	wd := time.Weekday((days%7 + 7 + 4) % 7)
	return min, wd
}

func (z *zoneClock) period(t time.Time) *zonePeriod {
	lt := t.In(z.loc)
	_, off := lt.Zone()
	start, end := lt.ZoneBounds()
	p := &zonePeriod{start: math.MinInt64, end: math.MaxInt64, offset: int64(off)}
	if !start.IsZero() {
		p.start = start.Unix()
	}
	if !end.IsZero() {
		p.end = end.Unix()
	}
	return p
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
