package redis

import (
	"context"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/portcullis-ai/portcullis/internal/behavior"
)

// SessionStore is behavior.SessionStore on Redis: per session a hash of label name to the label
// (JSON), per agent a sorted set of its sessions by last use, per (agent, user) the floor of
// evicted sessions' labels; every key expires with the session's idle lifetime. An agent's keys
// share one hash tag, so each operation is one atomic Lua script, in a cluster too.
type SessionStore struct {
	c      goredis.UniversalClient
	prefix string
	opt    behavior.SessionOptions
}

var _ behavior.SessionStore = (*SessionStore)(nil)

// NewSessionStore returns a store on c under prefix (e.g. "pcl:sess:"); zero options take the
// memory store's defaults.
func NewSessionStore(c goredis.UniversalClient, prefix string, opt behavior.SessionOptions) *SessionStore {
	if prefix == "" {
		prefix = "pcl:sess:"
	}
	d := behavior.NewMemorySessions(opt).Options()
	return &SessionStore{c: c, prefix: prefix, opt: d}
}

var (
	//go:embed session_add.lua
	sessionAddLua    string
	sessionAddScript = goredis.NewScript(sessionAddLua)
	//go:embed session_get.lua
	sessionGetLua    string
	sessionGetScript = goredis.NewScript(sessionGetLua)
)

// keys returns the agent's key prefix, the session's member and the session, index and floor keys.
func (s *SessionStore) keys(k behavior.SessionKey) (agent, member string, keys []string) {
	agent = s.prefix + "{" + hex.EncodeToString([]byte(k.Agent)) + "}:"
	user := hex.EncodeToString([]byte(k.User))
	member = user + ":" + hex.EncodeToString([]byte(k.ID))
	return agent, member, []string{agent + "s:" + member, agent + "z", agent + "f:" + user}
}

// SessionLabels implements behavior.SessionStore.
func (s *SessionStore) SessionLabels(ctx context.Context, k behavior.SessionKey, now time.Time) ([]behavior.Label, error) {
	if err := behavior.CheckSession(k, nil); err != nil {
		return nil, err
	}
	_, member, keys := s.keys(k)
	res, err := sessionGetScript.Run(ctx, s.c, keys, now.UnixMilli(), s.opt.TTL.Milliseconds(), member).Slice()
	if err != nil || len(res) != 2 {
		return nil, fmt.Errorf("redis session labels: %v", errors.Join(err, errors.New("unexpected reply")))
	}
	var out []behavior.Label
	for _, part := range res {
		kv, ok := part.([]any)
		if !ok || len(kv)%2 != 0 {
			return nil, errors.New("redis session labels: unexpected reply")
		}
		var these []behavior.Label
		for i := 0; i < len(kv); i += 2 {
			raw, _ := kv[i+1].(string)
			var l behavior.Label
			if err := json.Unmarshal([]byte(raw), &l); err != nil || l.Name != kv[i] {
				return nil, fmt.Errorf("redis session labels: malformed label %v", kv[i])
			}
			if !slices.ContainsFunc(out, func(x behavior.Label) bool { return x.Name == l.Name }) {
				these = append(these, l)
			}
		}
		slices.SortFunc(these, func(a, b behavior.Label) int { return strings.Compare(a.Name, b.Name) })
		out = append(out, these...)
	}
	return out, nil
}

// AddSessionLabels implements behavior.SessionStore.
func (s *SessionStore) AddSessionLabels(ctx context.Context, k behavior.SessionKey, labels []behavior.Label, now time.Time) error {
	if err := behavior.CheckSession(k, labels); err != nil {
		return err
	}
	agent, member, keys := s.keys(k)
	args := []any{now.UnixMilli(), s.opt.TTL.Milliseconds(), s.opt.MaxLabels, s.opt.MaxSessionsPerAgent, member, agent + "s:", agent + "f:"}
	for _, l := range labels {
		b, err := json.Marshal(l)
		if err != nil {
			return fmt.Errorf("redis session labels: %w", err)
		}
		args = append(args, l.Name, string(b))
	}
	if err := sessionAddScript.Run(ctx, s.c, keys[:2], args...).Err(); err != nil {
		if strings.Contains(err.Error(), "session label capacity") {
			return fmt.Errorf("%w: session label capacity", behavior.ErrCapacity)
		}
		return fmt.Errorf("redis session labels: %w", err)
	}
	return nil
}
