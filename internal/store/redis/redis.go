// Package redis holds the Redis implementations of engine stores for deployments that run more
// than one Portcullis: behavior.Store (call counts and baselines shared by every instance) and
// identity.NonceStore (a nonce used at one instance is refused at all of them).
//
// It implements interfaces declared by the engines and imports them; nothing but the
// composition root (internal/app) and tests imports it. Every operation that decides
// something is a single atomic command or Lua script.
package redis

import (
	"context"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/portcullis-ai/portcullis/internal/behavior"
	"github.com/portcullis-ai/portcullis/internal/identity"
)

// Dial connects to the Redis at rawURL (redis://[user:password@]host:port/db, rediss:// for
// TLS) and proves it answers, so a gateway that cannot reach it refuses to start. Errors never
// repeat the URL, which may hold a password.
func Dial(ctx context.Context, rawURL string) (*goredis.Client, error) {
	opt, err := goredis.ParseURL(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the whole URL
		}
		return nil, fmt.Errorf("redis: %w", err)
	}
	c := goredis.NewClient(opt)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis at %s: %w", opt.Addr, err)
	}
	return c, nil
}

// SetLogger sends the Redis client's own messages (dial failures, pool trouble), which it
// otherwise prints to stderr, to log as warnings. The client library has one logger per
// process.
func SetLogger(log *slog.Logger) {
	goredis.SetLogger(clientLog{log.With(slog.String("component", "redis"))})
}

type clientLog struct{ log *slog.Logger }

func (l clientLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// NonceStore is identity.NonceStore on Redis: SET NX with a millisecond expiry.
type NonceStore struct {
	c      goredis.UniversalClient
	prefix string
}

var _ identity.NonceStore = (*NonceStore)(nil)

// NewNonceStore stores nonces under prefix (e.g. "pcl:nonce:").
func NewNonceStore(c goredis.UniversalClient, prefix string) *NonceStore {
	return &NonceStore{c: c, prefix: prefix}
}

func (s *NonceStore) Use(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl < time.Millisecond {
		return false, fmt.Errorf("redis nonce: ttl %s is too short", ttl)
	}
	err := s.c.SetArgs(ctx, s.prefix+hex.EncodeToString([]byte(key)), "1", goredis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, goredis.Nil):
		return false, nil
	}
	return false, fmt.Errorf("redis nonce: %w", err)
}

// BehaviorOptions bound a BehaviorStore.
type BehaviorOptions struct {
	// Prefix of every key; default "pcl:bh:".
	Prefix string
	// MaxWindow is the longest countable window (default 24h): older entries are trimmed.
	MaxWindow time.Duration
	// IdleTTL: an agent's keys expire after this long without a call (default 30 days).
	IdleTTL time.Duration
}

// BehaviorStore is behavior.Store on Redis. Per agent: a hash of history (calls, active
// minutes, first seen, 168 hour-of-week counters), a sorted set of recent calls; per (agent,
// tool): a hash of parameter-size sums and a sorted set of recent calls. Scores are whole
// seconds, as in the memory store, so both give the same counts. All keys of an agent share
// one hash tag, so the Lua script that records a call is atomic in a cluster too.
type BehaviorStore struct {
	c   goredis.UniversalClient
	opt BehaviorOptions
}

var _ behavior.Store = (*BehaviorStore)(nil)

// NewBehaviorStore returns a store on c.
func NewBehaviorStore(c goredis.UniversalClient, opt BehaviorOptions) *BehaviorStore {
	if opt.Prefix == "" {
		opt.Prefix = "pcl:bh:"
	}
	if opt.MaxWindow <= 0 {
		opt.MaxWindow = 24 * time.Hour
	}
	if opt.IdleTTL <= 0 {
		opt.IdleTTL = 30 * 24 * time.Hour
	}
	return &BehaviorStore{c: c, opt: opt}
}

//go:embed record.lua
var recordLua string

var recordScript = goredis.NewScript(recordLua)

// keys returns the four keys of (agent, tool). Names are hex-encoded: any agent or tool name is
// safe in a key and cannot break out of the hash tag.
func (s *BehaviorStore) keys(agent, tool string) []string {
	a := s.opt.Prefix + "{" + hex.EncodeToString([]byte(agent)) + "}:"
	t := hex.EncodeToString([]byte(tool))
	return []string{a + "s", a + "r", a + "th:" + t, a + "tz:" + t}
}

func (s *BehaviorStore) checkWindow(w time.Duration) error {
	if w <= 0 || w > s.opt.MaxWindow {
		return fmt.Errorf("%w: %s (maximum %s)", behavior.ErrWindow, w, s.opt.MaxWindow)
	}
	return nil
}

func (s *BehaviorStore) Record(ctx context.Context, c behavior.Call, q behavior.Query) (behavior.Snapshot, error) {
	if c.Agent == "" || c.Tool == "" {
		return behavior.Snapshot{}, behavior.ErrInvalid
	}
	for _, w := range q.Windows {
		if err := s.checkWindow(w); err != nil {
			return behavior.Snapshot{}, err
		}
	}
	if err := s.checkWindow(q.BurstWindow); err != nil {
		return behavior.Snapshot{}, fmt.Errorf("burst window: %w", err)
	}
	size := float64(c.ParamSize)
	args := []any{
		c.At.Unix(), c.At.UnixMilli(), int64(s.opt.MaxWindow / time.Second), int64(q.BurstWindow / time.Second),
		strconv.FormatFloat(size, 'f', -1, 64), strconv.FormatFloat(size*size, 'f', -1, 64),
		behavior.HourOfWeek(c.At), int64(s.opt.IdleTTL / time.Second),
	}
	for _, w := range q.Windows {
		args = append(args, int64(w/time.Second))
	}
	res, err := recordScript.Run(ctx, s.c, s.keys(c.Agent, c.Tool), args...).Slice()
	if err != nil {
		return behavior.Snapshot{}, fmt.Errorf("redis behavior record: %w", err)
	}
	snap, err := parseRecord(res, len(q.Windows))
	if err != nil {
		return behavior.Snapshot{}, fmt.Errorf("redis behavior record: %w", err)
	}
	return snap, nil
}

func parseRecord(res []any, windows int) (behavior.Snapshot, error) {
	var snap behavior.Snapshot
	if len(res) != 4 {
		return snap, fmt.Errorf("script returned %d values, want 4", len(res))
	}
	stats, ok1 := res[0].([]any)
	tool, ok2 := res[1].([]any)
	if !ok1 || !ok2 || len(stats) != 4 || len(tool) != 4 {
		return snap, fmt.Errorf("script returned malformed history")
	}
	// HMGET gives nil for a field never written (a new agent or tool): zero.
	var perr error
	num := func(v any) int64 {
		if v == nil {
			return 0
		}
		s, ok := v.(string)
		n, err := strconv.ParseInt(s, 10, 64)
		if (err != nil || !ok) && perr == nil {
			perr = fmt.Errorf("history field %v is not an integer", v)
		}
		return n
	}
	flt := func(v any) float64 {
		if v == nil {
			return 0
		}
		s, ok := v.(string)
		f, err := strconv.ParseFloat(s, 64)
		if (err != nil || !ok) && perr == nil {
			perr = fmt.Errorf("history field %v is not a number", v)
		}
		return f
	}
	snap.AgentCalls = num(stats[0])
	snap.AgentActiveMinutes = num(stats[1])
	if ms := num(stats[2]); ms != 0 {
		snap.AgentFirstSeen = time.UnixMilli(ms).UTC()
	}
	snap.HourCalls = num(stats[3])
	snap.ToolCalls = num(tool[0])
	snap.ParamN = num(tool[1])
	snap.ParamSum = flt(tool[2])
	snap.ParamSumSq = flt(tool[3])
	if perr != nil {
		return snap, perr
	}
	burst, ok := res[2].(int64)
	if !ok {
		return snap, fmt.Errorf("burst count is %T", res[2])
	}
	snap.AgentBurst = int(burst)
	counts, ok := res[3].([]any)
	if !ok || len(counts) != windows {
		return snap, fmt.Errorf("window counts: got %v for %d windows", res[3], windows)
	}
	snap.WindowCounts = make([]int, windows)
	for i, c := range counts {
		n, ok := c.(int64)
		if !ok {
			return snap, fmt.Errorf("window count %d is %T", i, c)
		}
		snap.WindowCounts[i] = int(n)
	}
	return snap, nil
}

func (s *BehaviorStore) Count(ctx context.Context, agent, tool string, window time.Duration, now time.Time) (int, error) {
	if err := s.checkWindow(window); err != nil {
		return 0, err
	}
	k := s.keys(agent, tool)
	n, err := s.c.ZCount(ctx, k[3], "("+strconv.FormatInt(now.Unix()-int64(window/time.Second), 10), "+inf").Result()
	if err != nil {
		return 0, fmt.Errorf("redis behavior count: %w", err)
	}
	return int(n), nil
}
