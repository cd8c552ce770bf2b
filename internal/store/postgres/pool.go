package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolOptions say how Connect reaches the database.
type PoolOptions struct {
	// Schema, when set, is the connections' search_path: it holds every table. Empty: the
	// connection string's own search_path.
	Schema string
	// CreateSchema creates Schema if it is missing (a gateway does; a reader such as
	// `portcullis audit` does not).
	CreateSchema bool
	// MaxConns bounds the pool (0: pgxpool's default).
	MaxConns int32
}

// schemaLock serialises CREATE SCHEMA and CREATE TABLE across replicas starting together
// (concurrent CREATE … IF NOT EXISTS can still fail on the catalog's unique indexes).
const schemaLock = 0x706f7274_736368 // "portsch"

// Connect opens a pool on dsn and proves the database answers (creating opts.Schema when
// asked) before returning, so a gateway that cannot reach its database refuses to start.
// Errors never repeat a password: pgx redacts it from connection strings it quotes.
func Connect(ctx context.Context, dsn string, opts PoolOptions) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if opts.Schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if opts.CreateSchema && opts.Schema != "" {
		err = migrate(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{opts.Schema}.Sanitize())
			return err
		})
	} else {
		err = pool.Ping(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return pool, nil
}

// migrate runs fn in a transaction that holds the schema lock.
func migrate(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLock)); err != nil {
			return err
		}
		return fn(tx)
	})
}
