package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// consoleSchema: a session row is keyed by the SHA-256 of its cookie token (never the token),
// its data is the console's (who signed in and how to check them again: no secret), and its two
// deadlines are the gateway's clock in Unix nanoseconds.
const consoleSchema = `
CREATE TABLE IF NOT EXISTS console_sessions (
	key        BYTEA PRIMARY KEY,
	data       BYTEA NOT NULL,
	idle_until BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
`

// ConsoleSessions keeps the web console's signed-in sessions for every replica
// (console.SessionStore). Every read compares both deadlines with the time the caller passes;
// the database's clock is never read.
type ConsoleSessions struct {
	pool *pgxpool.Pool
}

// NewConsoleSessions creates the sessions table if needed and returns the store.
func NewConsoleSessions(ctx context.Context, pool *pgxpool.Pool) (*ConsoleSessions, error) {
	if err := migrate(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, consoleSchema)
		return err
	}); err != nil {
		return nil, fmt.Errorf("create console session table: %w", err)
	}
	return &ConsoleSessions{pool: pool}, nil
}

// Create stores a session unless max are live at now. The table is locked against other
// sign-ins for the count and the insert, so that replicas signing people in at once never pass
// max together; reads and sign-outs wait for that short transaction only.
func (s *ConsoleSessions) Create(ctx context.Context, key [sha256.Size]byte, data []byte, now, idleUntil, expires time.Time, max int) (bool, error) {
	ok := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "LOCK TABLE console_sessions IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return err
		}
		n := now.UnixNano()
		if _, err := tx.Exec(ctx, "DELETE FROM console_sessions WHERE idle_until <= $1 OR expires_at <= $1", n); err != nil {
			return err
		}
		var live int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM console_sessions").Scan(&live); err != nil {
			return err
		}
		if live >= max {
			return nil
		}
		tag, err := tx.Exec(ctx, "INSERT INTO console_sessions (key, data, idle_until, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
			key[:], data, idleUntil.UnixNano(), expires.UnixNano())
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return errors.New("a session with this key exists")
		}
		ok = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("postgres console sessions: create: %w", err)
	}
	return ok, nil
}

// Touch returns the live session's data, moving its idle deadline when idle > 0; an expired one
// is deleted. One statement, one round trip, hit or miss: the expired row's DELETE rides along
// in a CTE (a row is either live or expired, so the two never touch the same row).
func (s *ConsoleSessions) Touch(ctx context.Context, key [sha256.Size]byte, now time.Time, idle time.Duration) ([]byte, error) {
	n := now.UnixNano()
	var data []byte
	var err error
	if idle > 0 {
		err = s.pool.QueryRow(ctx, touchGone+`UPDATE console_sessions SET idle_until = LEAST($3::BIGINT, expires_at)
			WHERE key = $1 AND idle_until > $2 AND expires_at > $2 RETURNING data`, key[:], n, now.Add(idle).UnixNano()).Scan(&data)
	} else {
		err = s.pool.QueryRow(ctx, touchGone+"SELECT data FROM console_sessions WHERE key = $1 AND idle_until > $2 AND expires_at > $2", key[:], n).Scan(&data)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("postgres console sessions: %w", err)
	}
	return data, nil
}

// touchGone deletes the session under $1 if it is past a deadline at $2.
const touchGone = "WITH gone AS (DELETE FROM console_sessions WHERE key = $1 AND (idle_until <= $2 OR expires_at <= $2)) "

// Delete removes the session under key.
func (s *ConsoleSessions) Delete(ctx context.Context, key [sha256.Size]byte) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM console_sessions WHERE key = $1", key[:]); err != nil {
		return fmt.Errorf("postgres console sessions: delete: %w", err)
	}
	return nil
}
