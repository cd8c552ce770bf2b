package postgres

import (
	"context"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/console"
	"github.com/portcullis-ai/portcullis/internal/store/postgres/pgtest"
	"github.com/portcullis-ai/portcullis/internal/store/storetest"
)

var _ console.SessionStore = (*ConsoleSessions)(nil)

func TestConsoleSessionsContract(t *testing.T) {
	storetest.RunConsoleSessions(t, func(t *testing.T) func() console.SessionStore {
		dsn, schema := pgtest.Schema(t)
		pool := pgtest.Pool(t, dsn, schema)
		return func() console.SessionStore {
			st, err := NewConsoleSessions(context.Background(), pool)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
	})
}
