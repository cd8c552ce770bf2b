package guard

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/portcullis-ai/portcullis/internal/behavior"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// CodeSession is the stable code of a decision or result refused because the session store
// could not be read or written: what the agent has seen is unknown, so nothing is decided on it.
const CodeSession = "session_unavailable"

// MaxSessionIDBytes bounds a transport's session ID; a longer one is refused.
const MaxSessionIDBytes = behavior.MaxSessionIDBytes

// sessionKey is the store key of a call's session: per agent and invoking user.
func sessionKey(agent, user, id string) behavior.SessionKey {
	return behavior.SessionKey{Agent: agent, User: user, ID: id}
}

// sessionState reads what the call's session has seen, for the policy and the record.
func (g *Guard) sessionState(ctx context.Context, k behavior.SessionKey, now time.Time) (*policy.Session, error) {
	ls, err := g.sessions.SessionLabels(ctx, k, now)
	if err != nil {
		return nil, err
	}
	s := &policy.Session{ID: k.ID, Labels: make([]string, len(ls)), Sources: make([]string, len(ls))}
	for i, l := range ls {
		s.Labels[i] = l.Name
		if l.Tool != "" {
			s.Sources[i] = l.Tool + " " + l.DecisionID
		}
	}
	return s, nil
}

// resultLabels are the labels a result brings to its session: the tool's declaration in the
// agent's policy (returns, classification), injection findings (untrusted) and personal data or
// secrets (private).
func resultLabels(set *policy.Set, agent, tool, decisionID string, fs []inspect.Finding) []behavior.Label {
	var names []string
	add := func(n string) {
		for _, x := range names {
			if x == n {
				return
			}
		}
		names = append(names, n)
	}
	if d, ok := set.Tool(agent, tool); ok {
		for _, l := range d.Returns {
			add(l)
		}
		if d.Classification != "" {
			add(policy.ClassificationLabel + d.Classification)
		}
	}
	for _, f := range fs {
		switch {
		case strings.HasPrefix(f.Kind, "prompt_injection."):
			add(policy.LabelUntrusted)
		case strings.HasPrefix(f.Kind, "pii."), strings.HasPrefix(f.Kind, "secret."):
			add(policy.LabelPrivate)
		}
	}
	out := make([]behavior.Label, len(names))
	for i, n := range names {
		out[i] = behavior.Label{Name: n, Tool: tool, DecisionID: decisionID}
	}
	return out
}

// addResultLabels records what a result forwarded to the agent brings to its session; the
// record names them. An error withholds the result (the caller fails closed).
func (g *Guard) addResultLabels(ctx context.Context, rd *ResultDecision, rec *ledger.Record, agent string, rd0 tokenClaims, tool string) error {
	if g.sessions == nil || rd.Action == ResultBlock {
		return nil
	}
	ls := resultLabels(g.policies.Current(), agent, tool, rec.DecisionID, rd.Findings)
	rec.Session = &ledger.Session{ID: rd0.session}
	if len(ls) == 0 {
		return nil
	}
	for _, l := range ls {
		rec.Session.Labels = append(rec.Session.Labels, l.Name)
	}
	if err := g.sessions.AddSessionLabels(ctx, sessionKey(agent, rd0.user, rd0.session), ls, rec.Time); err != nil {
		return fmt.Errorf("session labels: %w", err)
	}
	return nil
}

// userID is the invoking user's ID ("" none).
func userID(u *identity.User) string {
	if u == nil {
		return ""
	}
	return u.ID
}

// clipSession bounds a session ID quoted in an error.
func clipSession(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
