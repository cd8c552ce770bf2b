package guard

import (
	"sync"
	"time"
)

// CodeNotProposed is the stable code of a call refused under require_proposal: no model response
// in its session proposed it (or its proposal was used, or is too old).
const CodeNotProposed = "not_proposed"

// SourceLLM is the Source of calls a model proposed through the LLM gateway.
const SourceLLM = "llm"

// proposalKey is one proposed call: the session it was proposed in and exactly what it calls.
type proposalKey struct {
	agent, user, session, tool, digest string
}

type proposal struct {
	at time.Time // the latest
	n  int       // proposals not yet used
}

// proposals remembers the calls models proposed (and the guard allowed), so that a call from
// another transport under require_proposal runs only as often as a model proposed it. It lives in
// the process: both gateways must be served by the same one. It is bounded; past the bound a new
// proposal is not remembered, so its call is refused (fail closed).
type proposals struct {
	mu  sync.Mutex
	max int
	ttl time.Duration
	m   map[proposalKey]proposal
}

func newProposals(max int, ttl time.Duration) *proposals {
	return &proposals{max: max, ttl: ttl, m: map[proposalKey]proposal{}}
}

func (p *proposals) add(k proposalKey, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.m[k]; !ok && len(p.m) >= p.max {
		for x, v := range p.m {
			if now.Sub(v.at) > p.ttl {
				delete(p.m, x)
			}
		}
		if len(p.m) >= p.max {
			return
		}
	}
	v := p.m[k]
	v.at, v.n = now, v.n+1
	p.m[k] = v
}

// use spends one proposal of k made within window before now.
func (p *proposals) use(k proposalKey, window time.Duration, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[k]
	if !ok || v.n <= 0 || now.Sub(v.at) > window {
		return false
	}
	if v.n--; v.n == 0 {
		delete(p.m, k)
	} else {
		p.m[k] = v
	}
	return true
}

// proposalKeyOf is the key of req's call for agent and user.
func proposalKeyOf(agent, user string, req Request, p *callParams) (proposalKey, error) {
	digest, err := p.paramsDigest()
	if err != nil {
		return proposalKey{}, err
	}
	return proposalKey{agent: agent, user: user, session: req.Session, tool: req.Tool, digest: digest}, nil
}
