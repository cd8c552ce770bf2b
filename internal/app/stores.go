package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/auditindex"
	"github.com/portcullis-ai/portcullis/internal/behavior"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/console"
	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/postgres"
	"github.com/portcullis-ai/portcullis/internal/store/redis"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// connectTimeout bounds reaching PostgreSQL or Redis at start: a gateway that cannot reach its
// stores refuses to start rather than deny every call.
const connectTimeout = 10 * time.Second

// stores are the state cfg.Store selects: the embedded default (SQLite files in the data
// directory — ledger, approvals and signature nonces; behaviour in memory) or PostgreSQL and
// Redis, shared by replicas.
type stores struct {
	ledger ledger.Store
	// auditIndex is the ledger's search index, beside it.
	auditIndex auditindex.Store
	approvals  approval.Store
	// notifier wakes approval long-polls on every replica (approvals on PostgreSQL); nil otherwise.
	notifier *postgres.ApprovalNotifier
	behavior behavior.Store
	// sessions keeps what each session has seen; it lives where behaviour does.
	sessions behavior.SessionStore
	// proposals and links live with the sessions (require_proposal; LLM conversations).
	proposals behavior.ProposalStore
	links     behavior.SessionLinks
	nonces    identity.NonceStore
	// claims records the outcomes reported (once each, for an outcome token's hour). In
	// process it is a store of its own: claims outlive signature nonces twelvefold, and in one
	// store they would take the signatures' capacity (a full store refuses every signed
	// request) and multiply the buckets each signature is looked up in. Redis and SQLite keep
	// both in one keyspace with native expiry and no in-process cap.
	claims identity.NonceStore
	// console keeps the console's sign-in sessions for every replica; nil: in memory.
	console console.SessionStore

	closers []func() error // in the order opened; closed in reverse
	// pings reach the services the stores live on, for /readyz: a replica that lost its
	// database or Redis denies every call, and a load balancer should stop sending it any.
	pings []servicePing
}

// claimJournalWidth is the time one file of the outcome-claim journal covers: claims live up to
// an outcome token's hour and a minute, so about thirteen files.
const claimJournalWidth = 5 * time.Minute

// servicePing checks that one service answers.
type servicePing struct {
	name string
	ping func(context.Context) error
}

// readyTimeout bounds one readiness probe's pings.
const readyTimeout = 2 * time.Second

// ping checks every service the stores use; nil with the embedded default. The probes run at
// once and the answer comes within readyTimeout whatever the drivers do: a client may not honour
// the context's deadline (go-redis waits for its own read timeout, and retries, unless told
// otherwise), and a readiness probe that hangs longer than documented is read as a dead process.
// A probe still running when the answer is given ends on its driver's own timeout.
func (s *stores) ping() error {
	if len(s.pings) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	errc := make(chan error, len(s.pings)) // buffered: a late probe never blocks
	for _, p := range s.pings {
		go func() {
			if err := p.ping(ctx); err != nil {
				errc <- fmt.Errorf("%s unreachable: %w", p.name, err)
				return
			}
			errc <- nil
		}()
	}
	for range s.pings {
		select {
		case err := <-errc:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("stores did not answer within %v: %w", readyTimeout, ctx.Err())
		}
	}
	return nil
}

// openStores opens the configured stores. On error, whatever was opened is closed again.
func openStores(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *stores, err error) {
	s := &stores{}
	defer func() {
		if err != nil {
			s.close(log)
		}
	}()
	sc := cfg.Store
	var pool *pgxpool.Pool
	if cfg.Uses(config.StorePostgres) {
		if pool, err = connectPostgres(ctx, sc.Postgres, true); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() error { pool.Close(); return nil })
		s.pings = append(s.pings, servicePing{"store.postgres", pool.Ping})
	}
	var rc *goredis.Client
	if cfg.Uses(config.StoreRedis) {
		u, err := fromEnv("store.redis.url_env", sc.Redis.URLEnv)
		if err != nil {
			return nil, err
		}
		redis.SetLogger(log)
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		rc, err = redis.Dial(cctx, u)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("store.redis: cannot use the server named by $%s: %w", sc.Redis.URLEnv, err)
		}
		s.closers = append(s.closers, rc.Close)
		s.pings = append(s.pings, servicePing{"store.redis", func(ctx context.Context) error { return rc.Ping(ctx).Err() }})
	}

	switch sc.Ledger {
	case config.StorePostgres:
		st, err := postgres.NewLedger(ctx, pool)
		if err != nil {
			return nil, fmt.Errorf("store.ledger: %w", err)
		}
		s.ledger = st
		s.closers = append(s.closers, s.ledger.Close)
		if s.auditIndex, err = postgres.NewAuditIndex(ctx, pool, st); err != nil {
			return nil, fmt.Errorf("store.ledger: %w", err)
		}
	default:
		st, err := sqlite.OpenLedger(filepath.Join(cfg.DataDir, LedgerFile))
		if err != nil {
			return nil, fmt.Errorf("open ledger store: %w", err)
		}
		s.ledger = st
		s.closers = append(s.closers, s.ledger.Close)
		x, err := sqlite.OpenAuditIndex(filepath.Join(cfg.DataDir, AuditIndexFile), st)
		if err != nil {
			return nil, err
		}
		s.auditIndex = x
		s.closers = append(s.closers, x.Close)
	}

	switch sc.Approvals {
	case config.StorePostgres:
		st, err := postgres.NewApprovals(ctx, pool)
		if err != nil {
			return nil, fmt.Errorf("store.approvals: %w", err)
		}
		s.approvals = st
		s.notifier = postgres.NewApprovalNotifier(pool, func(err error) {
			log.Warn("approval notifications between replicas", slog.Any("error", err))
		})
	default:
		st, err := sqlite.OpenApprovals(ctx, filepath.Join(cfg.DataDir, ApprovalsFile))
		if err != nil {
			return nil, fmt.Errorf("open approvals: %w", err)
		}
		s.approvals = st
		s.closers = append(s.closers, st.Close)
	}

	if sc.Behavior == config.StoreRedis {
		s.behavior = redis.NewBehaviorStore(rc, redis.BehaviorOptions{Prefix: sc.Redis.Prefix + "bh:"})
		rs := redis.NewSessionStore(rc, sc.Redis.Prefix+"sess:", sessionOptions(cfg.Sessions))
		s.sessions, s.proposals, s.links = rs, rs, rs
	} else {
		s.behavior = behavior.NewMemoryStore(behavior.MemoryOptions{})
		s.sessions = behavior.NewMemorySessions(sessionOptions(cfg.Sessions))
		s.proposals = behavior.NewMemoryProposals(0, cfg.Sessions.IdleLifetime)
		s.links = behavior.NewMemoryLinks(0, cfg.Sessions.IdleLifetime)
	}
	switch sc.Nonces {
	case config.StoreRedis:
		s.nonces = redis.NewNonceStore(rc, sc.Redis.Prefix+"nonce:")
	case config.StoreMemory:
		s.nonces = identity.NewMemoryNonceStore(nil)
		s.claims = identity.NewMemoryClaimStoreMax(nil, cfg.Limits.MaxOutcomeClaims)
	case config.StoreSQLite:
		// Durable and shared by the processes on one data directory.
		st, err := sqlite.OpenNonces(ctx, filepath.Join(cfg.DataDir, NoncesFile), nil)
		if err != nil {
			return nil, fmt.Errorf("open nonces: %w", err)
		}
		s.nonces = st
		s.closers = append(s.closers, st.Close)
	default:
		// Durable: a request signed before a restart is still a replay after it.
		st, err := identity.OpenFileNonceStore(filepath.Join(cfg.DataDir, NoncesDir), nil)
		if err != nil {
			return nil, fmt.Errorf("open nonces: %w", err)
		}
		s.nonces = st
		s.closers = append(s.closers, st.Close)
		ct, err := identity.OpenFileClaimStore(filepath.Join(cfg.DataDir, OutcomeClaimsDir), claimJournalWidth, cfg.Limits.MaxOutcomeClaims, nil)
		if err != nil {
			return nil, fmt.Errorf("open outcome claims: %w", err)
		}
		s.claims = ct
		s.closers = append(s.closers, ct.Close)
		// Claims journaled with the signature nonces (before they had their own directory)
		// still count until they expire: an outcome reported then is not reported again.
		if err := ct.Adopt(filepath.Join(cfg.DataDir, NoncesDir), guard.IsOutcomeClaim); err != nil {
			return nil, fmt.Errorf("open outcome claims: %w", err)
		}
	}
	if s.claims == nil {
		s.claims = s.nonces
	}

	switch sc.ConsoleSessions() {
	case config.StorePostgres:
		if !cfg.ConsoleOn() {
			break
		}
		st, err := postgres.NewConsoleSessions(ctx, pool)
		if err != nil {
			return nil, fmt.Errorf("store.console: %w", err)
		}
		s.console = st
	case config.StoreRedis:
		if cfg.ConsoleOn() {
			s.console = redis.NewConsoleSessions(rc, sc.Redis.Prefix)
		}
	}

	// A shared ledger means replicas; state kept in memory is then per replica.
	if sc.Ledger == config.StorePostgres {
		if sc.Nonces != config.StoreRedis {
			log.Warn("store.nonces is " + sc.Nonces + " but the ledger is shared: with several replicas a signed request can be replayed once at each; set store.nonces: redis")
		}
		if cfg.ConsoleOn() && sc.ConsoleSessions() == config.StoreMemory {
			log.Warn("store.console is memory but the ledger is shared: with several replicas a person signed in at one is signed out at the others; set store.console: postgres")
		}
		if sc.Behavior == config.StoreMemory {
			log.Warn("store.behavior is memory but the ledger is shared: with several replicas each counts only its own calls; set store.behavior: redis")
		}
	}
	return s, nil
}

// connectPostgres opens the configured pool (creating the schema when create is set).
func connectPostgres(ctx context.Context, pc config.PostgresConfig, create bool) (*pgxpool.Pool, error) {
	dsn, err := fromEnv("store.postgres.dsn_env", pc.DSNEnv)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	pool, err := postgres.Connect(ctx, dsn, postgres.PoolOptions{Schema: pc.Schema, CreateSchema: create, MaxConns: int32(pc.MaxConns)})
	if err != nil {
		return nil, fmt.Errorf("store.postgres: cannot use the database named by $%s: %w", pc.DSNEnv, err)
	}
	return pool, nil
}

// OpenLedgerStore opens the existing ledger cfg's gateway writes, for reading (`portcullis
// audit`): the SQLite file in dataDir, or PostgreSQL with store.ledger: postgres. It never
// creates a ledger, nor anything else: the SQLite file is opened read-only (the directory may be
// a copy the auditor cannot write), and without the data directory's writer lock, so it can be
// read beside a live gateway. Closing the store closes its connections.
func OpenLedgerStore(ctx context.Context, cfg *config.Config, dataDir string) (ledger.Store, error) {
	if cfg.Store.Ledger != config.StorePostgres {
		path := filepath.Join(dataDir, LedgerFile)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("%s: cannot read the ledger: %w", path, err)
		}
		return sqlite.OpenLedgerReadOnly(path, DataDirInUse(dataDir))
	}
	pool, err := connectPostgres(ctx, cfg.Store.Postgres, false)
	if err != nil {
		return nil, err
	}
	st, err := postgres.OpenLedger(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return poolStore{st, pool}, nil
}

// poolStore is a ledger store that owns its pool.
type poolStore struct {
	*postgres.Ledger
	pool *pgxpool.Pool
}

func (s poolStore) Close() error {
	s.pool.Close()
	return nil
}

// fromEnv reads the secret an *_env field names.
func fromEnv(path, name string) (string, error) {
	v := os.Getenv(name)
	if v == "" {
		return "", fmt.Errorf("%s: the environment variable %s is not set (it holds the connection string, kept out of the file)", path, name)
	}
	return v, nil
}

// close closes every store, the most recently opened first (stores before their pools).
func (s *stores) close(log *slog.Logger) {
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			log.Warn("close store", slog.Any("error", err))
		}
	}
	s.closers = nil
}

// sessionOptions are the session store's bounds from the configuration.
func sessionOptions(c config.SessionsConfig) behavior.SessionOptions {
	return behavior.SessionOptions{TTL: c.IdleLifetime, MaxLabels: c.MaxLabels,
		MaxSessionsPerAgent: c.MaxSessionsPerAgent, MaxAgents: c.MaxAgents}
}
