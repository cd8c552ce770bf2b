package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// WireRequest is the JSON form of a request, as `portcullis policy eval` and `policy test` read it:
//
//	{"agent":{"id":"…","roles":[…],"permissions":[…]},
//	 "user":{"id":"…","permissions":[…],"attributes":{…}},
//	 "tool":"…","params":{…},"time":"RFC 3339",
//	 "threat_level":"none|low|medium|high|critical",
//	 "findings":["sql_injection"],
//	 "calls":[{"tool":"…","time":"RFC 3339"}],
//	 "session":{"id":"…","labels":["untrusted","private"]}}
type WireRequest struct {
	Agent struct {
		ID              string              `json:"id"`
		Roles           []string            `json:"roles"`
		Permissions     []string            `json:"permissions"`
		RolePermissions map[string][]string `json:"role_permissions"`
	} `json:"agent"`
	User *struct {
		ID          string                     `json:"id"`
		Permissions []string                   `json:"permissions"`
		Attributes  map[string]json.RawMessage `json:"attributes"`
	} `json:"user"`
	Tool               string         `json:"tool"`
	Params             map[string]any `json:"params"`
	Time               string         `json:"time"`
	ThreatLevel        *string        `json:"threat_level"`
	Findings           []string       `json:"findings"`
	ToolClassification string         `json:"tool_classification"`
	Calls              []WireCall     `json:"calls"`
	// Session is what the call's session has seen before it (session conditions read it).
	Session *WireSession `json:"session"`
}

// WireSession is a session state: its ID and the labels it has seen, with, optionally, where
// each came from (sources[i] for labels[i]).
type WireSession struct {
	ID      string   `json:"id"`
	Labels  []string `json:"labels"`
	Sources []string `json:"sources"`
}

// WireCall is one earlier call of the agent, for call-count windows and the hour baseline.
type WireCall struct {
	Tool string `json:"tool"`
	Time string `json:"time"`
}

// maxWireBytes bounds one JSON request.
const maxWireBytes = 1 << 20

// DecodeRequest parses one JSON request strictly (unknown fields are errors). It reports whether
// threat_level was given: when it is absent, the caller decides the level (see the CLI's
// ThreatHook; the inspection engine fills it from the params).
func DecodeRequest(data []byte) (req *Request, hasThreat bool, err error) {
	if len(data) > maxWireBytes {
		return nil, false, fmt.Errorf("decode request: %d bytes, more than the %d limit", len(data), maxWireBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber() // numbers exactly as written: a float64 rounds integers beyond 2^53
	var w WireRequest
	if err := dec.Decode(&w); err != nil {
		return nil, false, fmt.Errorf("decode request: %w", err)
	}
	if dec.More() {
		return nil, false, fmt.Errorf("decode request: trailing data after the object")
	}
	return w.Request()
}

// Request converts the wire form into the Go form.
func (w *WireRequest) Request() (*Request, bool, error) {
	if w.Agent.ID == "" {
		return nil, false, fmt.Errorf("decode request: agent.id is required")
	}
	if w.Tool == "" {
		return nil, false, fmt.Errorf("decode request: tool is required")
	}
	r := &Request{Tool: w.Tool, Params: w.Params, Findings: w.Findings, ToolClassification: w.ToolClassification}
	if w.Session != nil {
		r.Session = &Session{ID: w.Session.ID, Labels: w.Session.Labels, Sources: w.Session.Sources}
	}
	r.Agent.ID, r.Agent.Roles, r.Agent.Permissions, r.Agent.RolePermissions = w.Agent.ID, w.Agent.Roles, w.Agent.Permissions, w.Agent.RolePermissions
	if w.User != nil {
		u := &User{ID: w.User.ID, Permissions: w.User.Permissions, Attributes: map[string][]string{}}
		for k, raw := range w.User.Attributes {
			var s string
			if err := json.Unmarshal(raw, &s); err == nil {
				u.Attributes[k] = []string{s}
				continue
			}
			var l []string
			if err := json.Unmarshal(raw, &l); err != nil {
				return nil, false, fmt.Errorf("decode request: user.attributes.%s: want a string or a list of strings", k)
			}
			u.Attributes[k] = l
		}
		r.User = u
	}
	if w.Time == "" {
		return nil, false, fmt.Errorf("decode request: time is required (RFC 3339)")
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return nil, false, fmt.Errorf("decode request: time: %w", err)
	}
	r.Time = t
	hasThreat := w.ThreatLevel != nil
	if hasThreat {
		l, err := threat.ParseLevel(*w.ThreatLevel)
		if err != nil {
			return nil, false, fmt.Errorf("decode request: threat_level: %w", err)
		}
		r.Threat = l
	}
	if len(w.Calls) > 0 {
		h := &CallList{}
		for i, c := range w.Calls {
			ct, err := time.Parse(time.RFC3339Nano, c.Time)
			if err != nil {
				return nil, false, fmt.Errorf("decode request: calls[%d].time: %w", i, err)
			}
			h.Calls = append(h.Calls, Call{Tool: c.Tool, Time: ct})
		}
		h.sort()
		r.History = h
	}
	return r, hasThreat, nil
}

// Call is one earlier tool call.
type Call struct {
	Tool string
	Time time.Time
}

// CallList is a History over an explicit list of the agent's earlier calls.
type CallList struct {
	Calls []Call
}

var _ History = (*CallList)(nil)

func (l *CallList) sort() {
	sort.SliceStable(l.Calls, func(i, j int) bool { return l.Calls[i].Time.Before(l.Calls[j].Time) })
}

// CallCount counts earlier calls to tool with time in (now-window, now].
func (l *CallList) CallCount(tool string, window time.Duration, now time.Time) int {
	n := 0
	from := now.Add(-window)
	for _, c := range l.Calls {
		if c.Tool == tool && c.Time.After(from) && !c.Time.After(now) {
			n++
		}
	}
	return n
}

// UnusualHour judges t against the earlier calls: learned at BaselineMinCalls calls, rare when
// t's UTC hour of day holds less than RareHourShare of them.
func (l *CallList) UnusualHour(t time.Time) (unusual, learned bool) {
	total := len(l.Calls)
	if total < BaselineMinCalls {
		return false, false
	}
	h, inHour := t.UTC().Hour(), 0
	for _, c := range l.Calls {
		if c.Time.UTC().Hour() == h {
			inHour++
		}
	}
	return float64(inHour) < RareHourShare*float64(total), true
}
