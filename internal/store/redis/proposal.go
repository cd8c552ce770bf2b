package redis

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/portcullis-ai/portcullis/internal/behavior"
)

// The session store also keeps, under the agent's hash tag, the calls models proposed (one hash
// per session: call → "count:last ms") and the links naming sessions (one string per alias).

var (
	_ behavior.ProposalStore = (*SessionStore)(nil)
	_ behavior.SessionLinks  = (*SessionStore)(nil)
)

// MaxProposalsPerSession bounds the distinct calls remembered per session; past it a new one is
// refused (and its call with it).
const MaxProposalsPerSession = 1000

// ARGV: call, now ms, ttl ms, max calls.
var proposeScript = goredis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
local n = 0
if v then
  n = tonumber(string.match(v, '^(%d+):'))
elseif redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
  return redis.error_reply('proposal capacity')
end
redis.call('HSET', KEYS[1], ARGV[1], (n + 1) .. ':' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// ARGV: call, now ms, window ms. Spends one proposal made within the window.
var useProposalScript = goredis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local n, at = string.match(v, '^(%d+):(%d+)$')
n, at = tonumber(n), tonumber(at)
if not n or n <= 0 or tonumber(ARGV[2]) - at > tonumber(ARGV[3]) then return 0 end
if n == 1 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], (n - 1) .. ':' .. at)
end
return 1
`)

func (s *SessionStore) proposalKey(k behavior.SessionKey) string {
	agent, member, _ := s.keys(k)
	return agent + "p:" + member
}

// Propose implements behavior.ProposalStore.
func (s *SessionStore) Propose(ctx context.Context, k behavior.SessionKey, call string, now time.Time) error {
	if err := behavior.CheckSession(k, nil); err != nil {
		return err
	}
	err := proposeScript.Run(ctx, s.c, []string{s.proposalKey(k)}, call, now.UnixMilli(), s.opt.TTL.Milliseconds(), MaxProposalsPerSession).Err()
	if err != nil && strings.Contains(err.Error(), "proposal capacity") {
		return fmt.Errorf("%w: %d proposals in the session", behavior.ErrCapacity, MaxProposalsPerSession)
	}
	if err != nil {
		return fmt.Errorf("redis proposals: %w", err)
	}
	return nil
}

// UseProposal implements behavior.ProposalStore.
func (s *SessionStore) UseProposal(ctx context.Context, k behavior.SessionKey, call string, window time.Duration, now time.Time) (bool, error) {
	if err := behavior.CheckSession(k, nil); err != nil {
		return false, err
	}
	n, err := useProposalScript.Run(ctx, s.c, []string{s.proposalKey(k)}, call, now.UnixMilli(), window.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("redis proposals: %w", err)
	}
	return n == 1, nil
}

func (s *SessionStore) linkKey(agent, alias string) string {
	a, _, _ := s.keys(behavior.SessionKey{Agent: agent})
	return a + "l:" + hex.EncodeToString([]byte(alias))
}

// LinkSession implements behavior.SessionLinks.
func (s *SessionStore) LinkSession(ctx context.Context, agent, alias, id string, now time.Time) error {
	if alias == "" || len(alias) > behavior.MaxSessionIDBytes {
		return fmt.Errorf("%w: link", behavior.ErrSession)
	}
	if err := behavior.CheckSession(behavior.SessionKey{Agent: agent, ID: id}, nil); err != nil {
		return err
	}
	if err := s.c.Set(ctx, s.linkKey(agent, alias), id, s.opt.TTL).Err(); err != nil {
		return fmt.Errorf("redis session links: %w", err)
	}
	return nil
}

// LinkedSession implements behavior.SessionLinks; a link in use lives on.
func (s *SessionStore) LinkedSession(ctx context.Context, agent, alias string, now time.Time) (string, bool, error) {
	if agent == "" || alias == "" || len(alias) > behavior.MaxSessionIDBytes {
		return "", false, fmt.Errorf("%w: link", behavior.ErrSession)
	}
	id, err := s.c.GetEx(ctx, s.linkKey(agent, alias), s.opt.TTL).Result()
	if errors.Is(err, goredis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("redis session links: %w", err)
	}
	return id, true, nil
}
