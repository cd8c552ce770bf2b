// Package pgtest gives each test its own PostgreSQL schema on the server named by
// PORTCULLIS_TEST_POSTGRES, so tests of several packages (and of several helpers working at
// once) never see each other's tables. Tests skip, saying why, when the variable is unset.
// It is imported by tests only.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Env names the variable holding the test server's connection string.
const Env = "PORTCULLIS_TEST_POSTGRES"

// DSN returns the test server's connection string, or skips the test.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(Env)
	if dsn == "" {
		t.Skip(Env + " is not set: no PostgreSQL to test against (e.g. " + Env + "=postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	return dsn
}

// Schema creates a fresh schema, dropped with everything in it when the test ends, and
// returns the connection string and the schema's name.
func Schema(t testing.TB) (dsn, schema string) {
	t.Helper()
	dsn, schema = Name(t)
	exec(t, dsn, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	return dsn, schema
}

// Name returns the connection string and a fresh schema name that nothing has created yet
// (for code that creates it), dropped with everything in it when the test ends.
func Name(t testing.TB) (dsn, schema string) {
	t.Helper()
	dsn = DSN(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema = "portcullis_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		exec(t, dsn, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	return dsn, schema
}

func exec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to %s: %v", Env, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Pool opens a pool whose connections use schema; it is closed when the test ends.
func Pool(t testing.TB, dsn, schema string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewPool is Pool on a fresh Schema.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	dsn, schema := Schema(t)
	return Pool(t, dsn, schema)
}
