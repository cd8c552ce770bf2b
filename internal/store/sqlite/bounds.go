package sqlite

import (
	"database/sql"
	"fmt"
	"net/url"
)

// The embedded stores' memory bounds.
//
// SQLite's memory is not Go heap: the pure-Go driver allocates its page caches, parsed schemas
// and prepared statements through its own allocator, in memory mapped from the operating system
// outside the Go runtime. Neither GOGC nor the gateway's memory limit (GOMEMLIMIT) sees it or
// holds it back, and SQLite's own soft heap limit is not enforced in this build (the driver
// compiles SQLite with memory statistics off, SQLITE_DEFAULT_MEMSTATUS=0, and the limit is
// enforced only with them on). What bounds it is what is set here:
//
//   - each connection's page cache, cacheKiB (cache_size; SQLite's default is 2,000 KiB);
//   - no memory-mapped reads (mmap_size 0, SQLite's default, made explicit so that a build or
//     driver default cannot map a database that grows without end into the address space);
//   - a fixed number of connections per store, all kept open: a pool that closes idle
//     connections and opens new ones under load frees and re-allocates a cache and a parsed
//     schema each time, and the allocator keeps the freed pages mapped, so churn grows resident
//     memory as surely as more connections would.
//
// At most a few hundred KiB of schema and statements per connection come on top of the cache.
// docs/deployment.md gives the sum for a gateway.
const cacheKiB = 1024

// Connections each store keeps, open for the store's life.
const (
	ledgerConns     = 5 // one for Commit (ledger_writer.go), four for readers (proofs, audit)
	auditIndexConns = 4
	approvalConns   = 4 // one writer at a time (Approvals.mu), readers beside it
	nonceConns      = 4
)

// boundedPragmas are the pragmas every connection of an embedded store runs when it opens.
var boundedPragmas = []string{fmt.Sprintf("cache_size(-%d)", cacheKiB), "mmap_size(0)"}

// dsn is the data source name of the database at path with the pragmas each connection runs on
// opening (the bounds first), and the other query parameters in q (may be nil).
func dsn(path string, q url.Values, pragmas ...string) string {
	if q == nil {
		q = url.Values{}
	}
	for _, p := range append(boundedPragmas[:len(boundedPragmas):len(boundedPragmas)], pragmas...) {
		q.Add("_pragma", p)
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// bound fixes db's pool at n connections, none closed for being idle.
func bound(db *sql.DB, n int) {
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
}
