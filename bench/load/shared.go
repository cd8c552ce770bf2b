package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"
)

// shared is a fresh PostgreSQL schema and Redis key prefix for one run, and the environment
// that points the gateways at them.
type shared struct {
	dsn, schema string
	redisAddr   string
	prefix      string
	env         []string
}

// newShared sets the configuration at cfgPath on shared stores and gives dataDir the ledger
// keys every replica will share.
func newShared(cfgPath, bin, dataDir string) (*shared, error) {
	dsn, addr := os.Getenv("PORTCULLIS_TEST_POSTGRES"), os.Getenv("PORTCULLIS_TEST_REDIS")
	if dsn == "" || addr == "" {
		return nil, errors.New("-store shared needs PORTCULLIS_TEST_POSTGRES (a connection string) and PORTCULLIS_TEST_REDIS (host:port)")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	sh := &shared{dsn: dsn, schema: "portcullis_load_" + hex.EncodeToString(b[:]), redisAddr: addr}
	sh.prefix = "portcullis-load:" + sh.schema + ":"
	sh.env = []string{"PCL_LOAD_POSTGRES=" + dsn, "PCL_LOAD_REDIS=redis://" + addr + "/0"}
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = fmt.Fprintf(f, `
store:
  ledger: postgres
  approvals: postgres
  behavior: redis
  nonces: redis
  postgres:
    dsn_env: PCL_LOAD_POSTGRES
    schema: %s
  redis:
    url_env: PCL_LOAD_REDIS
    prefix: %q
`, sh.schema, sh.prefix)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command(bin, "audit", "keygen", "--data", dataDir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("audit keygen: %v\n%s", err, out)
	}
	return sh, nil
}

// remove drops the schema and deletes the keys.
func (sh *shared) remove() {
	ctx := context.Background()
	if c, err := pgx.Connect(ctx, sh.dsn); err == nil {
		_, _ = c.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{sh.schema}.Sanitize()+" CASCADE")
		c.Close(ctx)
	}
	rc := goredis.NewClient(&goredis.Options{Addr: sh.redisAddr})
	defer rc.Close()
	iter := rc.Scan(ctx, 0, sh.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		rc.Del(ctx, iter.Val())
	}
}
