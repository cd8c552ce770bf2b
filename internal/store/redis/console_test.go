package redis

import (
	"context"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/console"
	"github.com/portcullis-ai/portcullis/internal/store/storetest"
)

var _ console.SessionStore = (*ConsoleSessions)(nil)

func TestConsoleSessionsContract(t *testing.T) {
	c := client(t)
	storetest.RunConsoleSessions(t, func(t *testing.T) func() console.SessionStore {
		prefix := "pcl:test:console:" + time.Now().Format("150405.000000000") + ":"
		t.Cleanup(func() {
			keys, _ := c.Keys(context.Background(), prefix+"*").Result()
			if len(keys) > 0 {
				c.Del(context.Background(), keys...)
			}
		})
		return func() console.SessionStore { return NewConsoleSessions(c, prefix) }
	})
}
