package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/postgres"
	"github.com/portcullis-ai/portcullis/internal/store/postgres/pgtest"
)

// A gateway whose stores cannot be reached refuses to start, says which store and which
// environment variable, and never repeats a password.
func TestOpenRefusesUnreachableStores(t *testing.T) {
	pg := config.StoreConfig{Ledger: config.StorePostgres, Approvals: config.StoreSQLite, Behavior: config.StoreMemory, Nonces: config.StoreMemory,
		Postgres: config.PostgresConfig{DSNEnv: "PCL_TEST_DSN", MaxConns: 2}, Redis: config.RedisConfig{Prefix: "p:"}}
	rd := pg
	rd.Ledger, rd.Nonces, rd.Redis.URLEnv = config.StoreSQLite, config.StoreRedis, "PCL_TEST_REDIS_URL"
	tests := []struct {
		name  string
		store config.StoreConfig
		env   map[string]string
		want  []string
	}{
		{"postgres variable unset", pg, map[string]string{"PCL_TEST_DSN": ""}, []string{"store.postgres.dsn_env", "PCL_TEST_DSN", "not set"}},
		{"postgres unreachable", pg, map[string]string{"PCL_TEST_DSN": "postgres://portcullis:hunter2@127.0.0.1:1/ledger?connect_timeout=5"},
			[]string{"store.postgres", "$PCL_TEST_DSN", "127.0.0.1"}},
		{"postgres malformed", pg, map[string]string{"PCL_TEST_DSN": "postgres://portcullis:hunter2@127.0.0.1:x/ledger"}, []string{"store.postgres", "$PCL_TEST_DSN"}},
		{"redis variable unset", rd, map[string]string{"PCL_TEST_REDIS_URL": ""}, []string{"store.redis.url_env", "PCL_TEST_REDIS_URL", "not set"}},
		{"redis unreachable", rd, map[string]string{"PCL_TEST_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}, []string{"store.redis", "$PCL_TEST_REDIS_URL", "127.0.0.1:1"}},
		{"redis malformed", rd, map[string]string{"PCL_TEST_REDIS_URL": "redis://:hunter2@127.0.0.1:6379/x%zz"}, []string{"store.redis", "$PCL_TEST_REDIS_URL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			ctx := context.Background()
			_, cfgPath, _, cfg := initDefault(t)
			cfg.Store = tc.store
			a, err := Open(ctx, cfg, cfgPath, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				a.Close(ctx)
				t.Fatal("the gateway started without its store")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q repeats the password", err)
			}
		})
	}
}

// All four kinds of state on PostgreSQL and Redis: decisions land in the shared ledger, a held
// call in the shared approvals, call counts in Redis; Close leaves no connection behind.
func TestSharedStores(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	raddr := os.Getenv("PORTCULLIS_TEST_REDIS")
	if raddr == "" {
		t.Skip("PORTCULLIS_TEST_REDIS is not set: no Redis to test against (e.g. PORTCULLIS_TEST_REDIS=127.0.0.1:6379)")
	}
	name := "pcl-app-" + schema // tags this gateway's connections on both servers
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	t.Setenv("PCL_TEST_DSN", u.String())
	t.Setenv("PCL_TEST_REDIS_URL", "redis://"+raddr+"/0?client_name="+name)
	prefix := "pcl:test:" + schema + ":"

	g := newGatewayWith(t, func(c *config.Config) {
		c.Store = config.StoreConfig{Ledger: config.StorePostgres, Approvals: config.StorePostgres, Behavior: config.StoreRedis, Nonces: config.StoreRedis,
			Postgres: config.PostgresConfig{DSNEnv: "PCL_TEST_DSN", Schema: schema, MaxConns: 4},
			Redis:    config.RedisConfig{URLEnv: "PCL_TEST_REDIS_URL", Prefix: prefix}}
	})
	if _, a := g.post("/v1/decide", g.key, []byte(`{"tool":"fetch_customer_names","params":{"limit":5}}`)); a.Decision != "ALLOW" {
		t.Fatalf("allowed call: %+v", a)
	}
	_, held := g.post("/v1/decide", g.key, []byte(`{"tool":"fetch_customer_names","params":{"limit":5,"filter":"' OR 1=1 UNION SELECT password FROM users --"}}`))
	if held.Decision != "CONSTRAIN" || held.ApprovalID == "" {
		t.Fatalf("held call: %+v", held)
	}

	ctx := context.Background()
	pool := pgtest.Pool(t, dsn, schema)
	var pending int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM approval_requests WHERE id = $1", held.ApprovalID).Scan(&pending); err != nil || pending != 1 {
		t.Errorf("approval %s in PostgreSQL: %d rows, %v", held.ApprovalID, pending, err)
	}
	rc := goredis.NewClient(&goredis.Options{Addr: raddr})
	defer rc.Close()
	defer func() {
		keys, _ := rc.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
	}()
	if keys, err := rc.Keys(ctx, prefix+"bh:*").Result(); err != nil || len(keys) == 0 {
		t.Errorf("behaviour keys under %sbh: = %v, %v; want the calls counted in Redis", prefix, keys, err)
	}

	g.app.Close(ctx)
	st, err := postgres.OpenLedger(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ledger.ReadPublicKeys(g.dir + "/" + ledger.PublicKeysFile)
	if err != nil {
		t.Fatal(err)
	}
	// startup, two decisions, approval_requested, shutdown
	if rep, err := ledger.Verify(ctx, st, ledger.VerifyOptions{Keys: keys}); err != nil || !rep.Intact || rep.Records < 5 || rep.UnsignedRecords != 0 {
		t.Errorf("verify the shared ledger: %+v, %v", rep, err)
	}
	// Closed means closed: no connection of this gateway's is left on either server (a backend
	// goes away shortly after its client hangs up).
	deadline := time.Now().Add(5 * time.Second)
	for {
		var conns int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name).Scan(&conns); err != nil {
			t.Fatal(err)
		}
		clients, err := rc.ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if conns == 0 && !strings.Contains(clients, "name="+name+" ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Close: %d PostgreSQL connections named %s; redis clients:\n%s", conns, name, clients)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// /readyz reaches the services the stores live on: a replica whose Redis went away answers 503
// naming it, so a load balancer stops sending it calls it would deny.
func TestReadyChecksStoreServices(t *testing.T) {
	raddr := os.Getenv("PORTCULLIS_TEST_REDIS")
	if raddr == "" {
		t.Skip("PORTCULLIS_TEST_REDIS is not set: no Redis to test against (e.g. PORTCULLIS_TEST_REDIS=127.0.0.1:6379)")
	}
	proxy := newTCPProxy(t, raddr) // Redis as this gateway sees it, until the proxy stops
	t.Setenv("PCL_TEST_REDIS_URL", "redis://"+proxy.addr()+"/0")
	g := newGatewayWith(t, func(c *config.Config) {
		c.Store.Nonces, c.Store.Behavior = config.StoreRedis, config.StoreRedis
		c.Store.Redis = config.RedisConfig{URLEnv: "PCL_TEST_REDIS_URL", Prefix: "pcl:test:ready:"}
	})
	ready := func() (int, string) {
		resp, err := http.Get(g.srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := ready(); code != http.StatusOK {
		t.Fatalf("readyz with Redis up = %d %s", code, body)
	}
	proxy.stop()
	if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, "store.redis unreachable") {
		t.Errorf("readyz with Redis gone = %d %s; want 503 naming store.redis", code, body)
	}
}

// tcpProxy forwards connections to a target until stopped; stop also cuts the open ones.
type tcpProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(up, c); up.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) stop() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// silentProxy forwards loopback TCP to target until kill: from then on it accepts and never
// answers, and what it was forwarding goes silent — a server behind a black-holed network.
type silentProxy struct {
	ln   net.Listener
	dead chan struct{}
	mu   sync.Mutex
	cs   []net.Conn
}

func newSilentProxy(t *testing.T, target string) *silentProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &silentProxy{ln: ln, dead: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.keep(c)
			select {
			case <-p.dead:
				continue // accepted, never answered
			default:
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.keep(up)
			go func() { _, _ = io.Copy(up, c) }()
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := up.Read(buf)
					select {
					case <-p.dead:
						return // silent from now on
					default:
					}
					if n > 0 {
						_, _ = c.Write(buf[:n])
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.cs {
			c.Close()
		}
	})
	return p
}

func (p *silentProxy) keep(c net.Conn) {
	p.mu.Lock()
	p.cs = append(p.cs, c)
	p.mu.Unlock()
}

func (p *silentProxy) kill() { close(p.dead) }

// With Redis black-holed, /readyz answers 503 within its documented 2 s (go-redis would wait
// for its own read timeout and retry, about 5 s), naming why.
func TestReadyzBoundedWhenRedisBlackholed(t *testing.T) {
	raddr := os.Getenv("PORTCULLIS_TEST_REDIS")
	if raddr == "" {
		t.Skip("PORTCULLIS_TEST_REDIS is not set: no Redis to test against (e.g. PORTCULLIS_TEST_REDIS=127.0.0.1:6379)")
	}
	proxy := newSilentProxy(t, raddr)
	t.Setenv("PCL_TEST_REDIS_URL", "redis://"+proxy.ln.Addr().String()+"/0")
	g := newGatewayWith(t, func(c *config.Config) {
		c.Store = config.StoreConfig{Ledger: config.StoreSQLite, Approvals: config.StoreSQLite, Behavior: config.StoreMemory, Nonces: config.StoreRedis,
			Redis: config.RedisConfig{URLEnv: "PCL_TEST_REDIS_URL", Prefix: "pcl:test:readyz:"}}
	})
	get := func() (int, string, time.Duration) {
		start := time.Now()
		resp, err := http.Get(g.srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), time.Since(start)
	}
	if status, body, _ := get(); status != http.StatusOK {
		t.Fatalf("ready before the black hole: %d %s", status, body)
	}
	proxy.kill()
	status, body, took := get()
	if status != http.StatusServiceUnavailable {
		t.Errorf("readyz with Redis black-holed: %d %s, want 503", status, body)
	}
	if took > readyTimeout+500*time.Millisecond {
		t.Errorf("readyz took %v; documented %v", took, readyTimeout)
	}
}

// store.console names PostgreSQL or Redis while the console is off: nothing keeps state there,
// so the gateway starts with the service unreachable (it would otherwise refuse to start, or
// later report not ready, for a feature that is off).
func TestConsoleOffOpensNoConsoleStore(t *testing.T) {
	for _, kind := range []string{config.StorePostgres, config.StoreRedis} {
		t.Run(kind, func(t *testing.T) {
			t.Setenv("PCL_TEST_DSN", "postgres://portcullis@127.0.0.1:1/ledger?connect_timeout=1")
			t.Setenv("PCL_TEST_REDIS_URL", "redis://127.0.0.1:1/0")
			ctx := context.Background()
			_, cfgPath, _, cfg := initDefault(t)
			off := false
			cfg.Console.Enabled = &off
			cfg.Store.Console = kind
			cfg.Store.Postgres.DSNEnv, cfg.Store.Redis.URLEnv = "PCL_TEST_DSN", "PCL_TEST_REDIS_URL"
			a, err := Open(ctx, cfg, cfgPath, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatalf("the console is off, yet start needs store.console's %s: %v", kind, err)
			}
			defer a.Close(ctx)
			if n := len(a.stores.pings); n != 0 {
				t.Errorf("readiness checks %d services the configuration does not use", n)
			}
		})
	}
}
