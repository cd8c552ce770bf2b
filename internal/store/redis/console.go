package redis

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ConsoleSessions keeps the web console's signed-in sessions for every replica
// (console.SessionStore): per session a hash (the console's data, the idle and absolute
// deadlines in Unix milliseconds of the gateway's clock) under the SHA-256 of its cookie token —
// never the token —, one sorted set of sessions by absolute deadline, which bounds them all, and
// one by idle deadline, through which a sign-in sweeps the sessions left idle (at most
// consoleSweep a time).
// Every key shares one hash tag, so each operation is one atomic script, in a cluster too. Every
// read compares the deadlines with the time the caller passes; the keys' own expiry (the time
// left to the absolute deadline) only collects what nobody reads again.
type ConsoleSessions struct {
	c      goredis.UniversalClient
	prefix string // "<prefix>{console}:"
}

// NewConsoleSessions returns the store on c under prefix (e.g. "portcullis:").
func NewConsoleSessions(c goredis.UniversalClient, prefix string) *ConsoleSessions {
	return &ConsoleSessions{c: c, prefix: prefix + "{console}:"}
}

var (
	//go:embed console_create.lua
	consoleCreateLua    string
	consoleCreateScript = goredis.NewScript(consoleCreateLua)
	//go:embed console_touch.lua
	consoleTouchLua    string
	consoleTouchScript = goredis.NewScript(consoleTouchLua)
)

// consoleSweep bounds the sessions left idle that one sign-in removes: each sign-in sweeps, so
// the sweep keeps up with the sessions made, and its work does not grow with those held.
const consoleSweep = 64

func (s *ConsoleSessions) keys(key [sha256.Size]byte) (member string, keys []string) {
	member = hex.EncodeToString(key[:])
	return member, []string{s.prefix + "idx", s.prefix + "s:" + member, s.prefix + "idle"}
}

// Create stores a session unless max are live at now.
func (s *ConsoleSessions) Create(ctx context.Context, key [sha256.Size]byte, data []byte, now, idleUntil, expires time.Time, max int) (bool, error) {
	member, keys := s.keys(key)
	n, err := consoleCreateScript.Run(ctx, s.c, keys, now.UnixMilli(), idleUntil.UnixMilli(), expires.UnixMilli(), max,
		data, member, s.prefix+"s:", consoleSweep).Int()
	if err != nil {
		return false, fmt.Errorf("redis console sessions: create: %w", err)
	}
	return n == 1, nil
}

// Touch returns the live session's data, moving its idle deadline when idle > 0; an expired one
// is deleted.
func (s *ConsoleSessions) Touch(ctx context.Context, key [sha256.Size]byte, now time.Time, idle time.Duration) ([]byte, error) {
	member, keys := s.keys(key)
	v, err := consoleTouchScript.Run(ctx, s.c, keys, now.UnixMilli(), idle.Milliseconds(), member).Text()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis console sessions: %w", err)
	}
	return []byte(v), nil
}

// Delete removes the session under key.
func (s *ConsoleSessions) Delete(ctx context.Context, key [sha256.Size]byte) error {
	member, keys := s.keys(key)
	_, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Del(ctx, keys[1])
		p.ZRem(ctx, keys[0], member)
		p.ZRem(ctx, keys[2], member)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis console sessions: delete: %w", err)
	}
	return nil
}
