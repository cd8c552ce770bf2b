// Package threat holds the threat level scale shared by the inspection engine (which
// produces it) and the policy engine (whose threat_score conditions read it).
// It is a leaf package: it must not import anything from this module.
package threat

import (
	"fmt"
	"strings"
)

// Level is the ordered severity of a call's inspection result: None < Low < Medium < High < Critical.
type Level uint8

const (
	None Level = iota
	Low
	Medium
	High
	Critical
)

var names = [...]string{"none", "low", "medium", "high", "critical"}

// String returns the lower-case wire name of the level.
func (l Level) String() string {
	if int(l) < len(names) {
		return names[l]
	}
	return fmt.Sprintf("level(%d)", uint8(l))
}

// ParseLevel reads a level name, case-insensitively.
func ParseLevel(s string) (Level, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return Level(i), nil
		}
	}
	return None, fmt.Errorf("unknown threat level %q (want one of none, low, medium, high, critical)", s)
}

// MarshalText implements encoding.TextMarshaler so levels appear as names in JSON.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
