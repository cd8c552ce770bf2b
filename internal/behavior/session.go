package behavior

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"
)

// SessionKey names one session: what an agent, acting for one invoking user, has had in its
// context since the session began. ID "" is the agent's (and user's) default session, used by a
// caller that names none.
type SessionKey struct {
	Agent string
	User  string
	ID    string
}

// Label is one thing a session has seen — "untrusted", "private", "classification:confidential",
// or a label a policy declares — with the result that first brought it.
type Label struct {
	Name string `json:"name"`
	// Tool and DecisionID name the tool result that first brought the label.
	Tool       string `json:"tool,omitempty"`
	DecisionID string `json:"decision_id,omitempty"`
}

// Built-in session labels.
const (
	LabelUntrusted = "untrusted"
	LabelPrivate   = "private"
	// ClassificationPrefix starts a classification label: "classification:confidential".
	ClassificationPrefix = "classification:"
)

// labelRE is the form of every label name; a classification label is ClassificationPrefix and a
// name of that form.
var labelRE = regexp.MustCompile(`^(classification:)?[a-z][a-z0-9_.-]{0,62}$`)

// ValidLabel reports whether name is a well-formed label name.
func ValidLabel(name string) bool { return labelRE.MatchString(name) }

// SessionStore keeps what each session has seen. Labels only accumulate: nothing but the
// session's end (its idle lifetime) removes one. Implementations bound memory by evicting a
// session, never by forgetting part of one, and an evicted session's labels are not lost: they
// are kept for every session of that agent and user (the floor) for the session lifetime, so an
// agent that mints session ids to push out a session it has tainted taints them all instead.
type SessionStore interface {
	// SessionLabels returns the labels of k (with the floor's), each name once, and renews the
	// session's lifetime; a session never seen has none.
	SessionLabels(ctx context.Context, k SessionKey, now time.Time) ([]Label, error)
	// AddSessionLabels adds labels to k (a name it already has keeps its first source) and
	// renews its lifetime.
	AddSessionLabels(ctx context.Context, k SessionKey, labels []Label, now time.Time) error
}

// ErrSession reports a session key or label a store refuses.
var ErrSession = errors.New("behavior: invalid session key or label")

// Session limits: a session ID is at most MaxSessionIDBytes; longer ones are refused.
const MaxSessionIDBytes = 256

// CheckSession validates a key and labels before a store keeps them.
func CheckSession(k SessionKey, labels []Label) error {
	if k.Agent == "" || len(k.ID) > MaxSessionIDBytes || len(k.User) > MaxSessionIDBytes {
		return fmt.Errorf("%w: key", ErrSession)
	}
	for _, l := range labels {
		if !ValidLabel(l.Name) {
			return fmt.Errorf("%w: label %q", ErrSession, clipLabel(l.Name))
		}
	}
	return nil
}

func clipLabel(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// SessionOptions bound a MemorySessions.
type SessionOptions struct {
	// TTL is a session's idle lifetime: a session with no call for this long is forgotten.
	// Default 24h.
	TTL time.Duration
	// MaxLabels bounds the labels of one session; a label past it is refused (the caller
	// fails closed). Default 64.
	MaxLabels int
	// MaxSessionsPerAgent bounds one agent's sessions: past it the least recently used is
	// evicted into the floor. Default 1,000.
	MaxSessionsPerAgent int
	// MaxAgents bounds the agents held; past it AddSessionLabels fails with ErrCapacity.
	// Default 100,000.
	MaxAgents int
}

func (o SessionOptions) withDefaults() SessionOptions {
	if o.TTL <= 0 {
		o.TTL = 24 * time.Hour
	}
	if o.MaxLabels <= 0 {
		o.MaxLabels = 64
	}
	if o.MaxSessionsPerAgent <= 0 {
		o.MaxSessionsPerAgent = 1_000
	}
	if o.MaxAgents <= 0 {
		o.MaxAgents = 100_000
	}
	return o
}

// MemorySessions is the embedded SessionStore.
type MemorySessions struct {
	opt    SessionOptions
	mu     sync.Mutex
	agents map[string]*agentSessions
}

var _ SessionStore = (*MemorySessions)(nil)

// NewMemorySessions returns an empty store.
func NewMemorySessions(opt SessionOptions) *MemorySessions {
	return &MemorySessions{opt: opt.withDefaults(), agents: map[string]*agentSessions{}}
}

type agentSessions struct {
	sessions map[sessionID]*session
	floor    map[string]*session // per user: labels of evicted sessions
}

type sessionID struct{ user, id string }

type session struct {
	labels   []Label
	lastUsed time.Time
}

func (s *session) has(name string) bool {
	for _, l := range s.labels {
		if l.Name == name {
			return true
		}
	}
	return false
}

func (m *MemorySessions) live(s *session, now time.Time) bool {
	return s != nil && now.Sub(s.lastUsed) <= m.opt.TTL
}

// SessionLabels implements SessionStore.
func (m *MemorySessions) SessionLabels(_ context.Context, k SessionKey, now time.Time) ([]Label, error) {
	if err := CheckSession(k, nil); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.agents[k.Agent]
	if a == nil {
		return nil, nil
	}
	var out []Label
	if s := a.sessions[sessionID{k.User, k.ID}]; m.live(s, now) {
		out = append(out, s.labels...)
		s.lastUsed = now // a session in use lives on
	}
	if f := a.floor[k.User]; m.live(f, now) {
		f.lastUsed = now
		for _, l := range f.labels {
			if !hasLabel(out, l.Name) {
				out = append(out, l)
			}
		}
	}
	return out, nil
}

func hasLabel(ls []Label, name string) bool {
	for _, l := range ls {
		if l.Name == name {
			return true
		}
	}
	return false
}

// AddSessionLabels implements SessionStore.
func (m *MemorySessions) AddSessionLabels(_ context.Context, k SessionKey, labels []Label, now time.Time) error {
	if err := CheckSession(k, labels); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.agents[k.Agent]
	if a == nil {
		if len(m.agents) >= m.opt.MaxAgents {
			m.sweepLocked(now)
			if len(m.agents) >= m.opt.MaxAgents {
				return fmt.Errorf("%w: %d agents with sessions", ErrCapacity, len(m.agents))
			}
		}
		a = &agentSessions{sessions: map[sessionID]*session{}, floor: map[string]*session{}}
		m.agents[k.Agent] = a
	}
	sid := sessionID{k.User, k.ID}
	s := a.sessions[sid]
	if s != nil && !m.live(s, now) {
		delete(a.sessions, sid)
		s = nil
	}
	if s == nil {
		if len(a.sessions) >= m.opt.MaxSessionsPerAgent {
			m.evictLocked(a, now)
		}
		s = &session{}
		a.sessions[sid] = s
	}
	for _, l := range labels {
		if s.has(l.Name) {
			continue
		}
		if len(s.labels) >= m.opt.MaxLabels {
			return fmt.Errorf("%w: session has %d labels", ErrCapacity, len(s.labels))
		}
		s.labels = append(s.labels, l)
	}
	s.lastUsed = now
	return nil
}

// evictLocked drops expired sessions of a, and when none expired the least recently used one,
// whose labels join its user's floor.
func (m *MemorySessions) evictLocked(a *agentSessions, now time.Time) {
	var oldest sessionID
	var oldestS *session
	for id, s := range a.sessions {
		if !m.live(s, now) {
			delete(a.sessions, id)
			continue
		}
		if oldestS == nil || s.lastUsed.Before(oldestS.lastUsed) {
			oldest, oldestS = id, s
		}
	}
	if len(a.sessions) < m.opt.MaxSessionsPerAgent || oldestS == nil {
		return
	}
	delete(a.sessions, oldest)
	f := a.floor[oldest.user]
	if !m.live(f, now) {
		f = &session{}
		a.floor[oldest.user] = f
	}
	for _, l := range oldestS.labels {
		if !f.has(l.Name) {
			f.labels = append(f.labels, l)
		}
	}
	f.lastUsed = now
}

// sweepLocked forgets agents whose sessions and floors have all expired.
func (m *MemorySessions) sweepLocked(now time.Time) {
	for id, a := range m.agents {
		live := false
		for _, s := range a.sessions {
			live = live || m.live(s, now)
		}
		for _, f := range a.floor {
			live = live || m.live(f, now)
		}
		if !live {
			delete(m.agents, id)
		}
	}
}

// Options returns the store's options with their defaults filled in.
func (m *MemorySessions) Options() SessionOptions { return m.opt }
