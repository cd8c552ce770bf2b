package behavior

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"
)

// ProposalStore remembers the tool calls models proposed in each session, so that under
// require_proposal a call from another transport runs only as often as a model proposed it,
// within a window. Replicas share it (the Redis store): a model response inspected at one
// replica lets the matching call through at another.
type ProposalStore interface {
	// Propose remembers one more proposal of call (the tool and its argument digest) in k, made
	// at now. A store past its bounds refuses it with ErrCapacity: the call is then refused.
	Propose(ctx context.Context, k SessionKey, call string, now time.Time) error
	// UseProposal spends one proposal of call in k, if the latest was made within window
	// before now.
	UseProposal(ctx context.Context, k SessionKey, call string, window time.Duration, now time.Time) (bool, error)
}

// DefaultMaxProposals bounds the proposals the embedded store keeps, over all sessions.
const DefaultMaxProposals = 100_000

// MemoryProposals is the embedded ProposalStore: it serves one process.
type MemoryProposals struct {
	mu  sync.Mutex
	max int
	ttl time.Duration
	m   map[proposalKey]proposal
}

var _ ProposalStore = (*MemoryProposals)(nil)

type proposalKey struct {
	k    SessionKey
	call string
}

type proposal struct {
	at time.Time // the latest
	n  int       // proposals not yet used
}

// NewMemoryProposals keeps at most max proposals (DefaultMaxProposals when max <= 0); one older
// than ttl may be dropped to make room.
func NewMemoryProposals(max int, ttl time.Duration) *MemoryProposals {
	if max <= 0 {
		max = DefaultMaxProposals
	}
	return &MemoryProposals{max: max, ttl: ttl, m: map[proposalKey]proposal{}}
}

// Propose implements ProposalStore.
func (p *MemoryProposals) Propose(_ context.Context, k SessionKey, call string, now time.Time) error {
	if err := CheckSession(k, nil); err != nil {
		return err
	}
	pk := proposalKey{k, call}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.m[pk]; !ok && len(p.m) >= p.max {
		for x, v := range p.m {
			if now.Sub(v.at) > p.ttl {
				delete(p.m, x)
			}
		}
		if len(p.m) >= p.max {
			return fmt.Errorf("%w: %d proposals", ErrCapacity, len(p.m))
		}
	}
	v := p.m[pk]
	v.at, v.n = now, v.n+1
	p.m[pk] = v
	return nil
}

// UseProposal implements ProposalStore.
func (p *MemoryProposals) UseProposal(_ context.Context, k SessionKey, call string, window time.Duration, now time.Time) (bool, error) {
	if err := CheckSession(k, nil); err != nil {
		return false, err
	}
	pk := proposalKey{k, call}
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[pk]
	if !ok || v.n <= 0 || now.Sub(v.at) > window {
		return false, nil
	}
	if v.n--; v.n == 0 {
		delete(p.m, pk)
	} else {
		p.m[pk] = v
	}
	return true, nil
}

// SessionLinks names sessions by what a transport learns after the session began: the LLM
// gateway links each Responses response ID to the session it was served in, so that a turn
// continued from that response (previous_response_id) is decided in the same session. A link
// lives as long as a session (the idle lifetime, renewed when used). Replicas share them (the
// Redis store).
type SessionLinks interface {
	// LinkSession names agent's session id by alias.
	LinkSession(ctx context.Context, agent, alias, id string, now time.Time) error
	// LinkedSession returns the session alias names for agent; ok is false when none does (the
	// link was never made, has expired, or was evicted).
	LinkedSession(ctx context.Context, agent, alias string, now time.Time) (id string, ok bool, err error)
}

// DefaultMaxLinks bounds the links the embedded store keeps, over all agents.
const DefaultMaxLinks = 100_000

// MemoryLinks is the embedded SessionLinks. Past its bound the least recently used link is
// forgotten.
type MemoryLinks struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	order *list.List // of *link, least recently used first
	m     map[linkKey]*list.Element
}

var _ SessionLinks = (*MemoryLinks)(nil)

type linkKey struct{ agent, alias string }

type link struct {
	k  linkKey
	id string
	at time.Time
}

// NewMemoryLinks keeps at most max links (DefaultMaxLinks when max <= 0), each for ttl after
// its last use (24h when ttl <= 0).
func NewMemoryLinks(max int, ttl time.Duration) *MemoryLinks {
	if max <= 0 {
		max = DefaultMaxLinks
	}
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	return &MemoryLinks{max: max, ttl: ttl, order: list.New(), m: map[linkKey]*list.Element{}}
}

// checkLink validates a link's parts like a session key's.
func checkLink(agent, alias, id string) error {
	if alias == "" || len(alias) > MaxSessionIDBytes {
		return fmt.Errorf("%w: link", ErrSession)
	}
	return CheckSession(SessionKey{Agent: agent, ID: id}, nil)
}

// LinkSession implements SessionLinks.
func (l *MemoryLinks) LinkSession(_ context.Context, agent, alias, id string, now time.Time) error {
	if err := checkLink(agent, alias, id); err != nil {
		return err
	}
	k := linkKey{agent, alias}
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.m[k]; ok {
		lk := el.Value.(*link)
		lk.id, lk.at = id, now
		l.order.MoveToBack(el)
		return nil
	}
	for l.order.Len() >= l.max {
		old := l.order.Front()
		l.order.Remove(old)
		delete(l.m, old.Value.(*link).k)
	}
	l.m[k] = l.order.PushBack(&link{k: k, id: id, at: now})
	return nil
}

// LinkedSession implements SessionLinks.
func (l *MemoryLinks) LinkedSession(_ context.Context, agent, alias string, now time.Time) (string, bool, error) {
	if err := checkLink(agent, alias, ""); err != nil {
		return "", false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.m[linkKey{agent, alias}]
	if !ok {
		return "", false, nil
	}
	lk := el.Value.(*link)
	if now.Sub(lk.at) > l.ttl {
		l.order.Remove(el)
		delete(l.m, lk.k)
		return "", false, nil
	}
	lk.at = now
	l.order.MoveToBack(el)
	return lk.id, true, nil
}
