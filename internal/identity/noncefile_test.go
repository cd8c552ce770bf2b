package identity

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A nonce used before the store is closed is still used after it is opened again on the same
// directory; an expired one is fresh again, and the files of expired buckets are removed.
func TestFileNonceStoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	ctx := context.Background()
	const ttl = 5 * time.Minute

	s, err := OpenFileNonceStore(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	// Keys are compared byte for byte: NUL, newline and non-UTF-8 bytes included.
	keys := []string{"k1\x00n1", "k1\x00n2", "k2\x00line\nbreak", "k3\x00\xff\xfe"}
	for _, k := range keys {
		if fresh, err := s.Use(ctx, k, ttl); err != nil || !fresh {
			t.Fatalf("first use of %q: fresh=%v err=%v", k, fresh, err)
		}
		if fresh, err := s.Use(ctx, k, ttl); err != nil || fresh {
			t.Fatalf("second use of %q in one process: fresh=%v err=%v", k, fresh, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Use(ctx, "k9\x00n", ttl); err == nil {
		t.Fatal("Use after Close succeeded")
	}

	clock.Add(int64(time.Minute))
	s, err = OpenFileNonceStore(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if fresh, err := s.Use(ctx, k, ttl); err != nil || fresh {
			t.Fatalf("use of %q after a restart: fresh=%v err=%v (a replay)", k, fresh, err)
		}
	}
	if fresh, _ := s.Use(ctx, "k1\x00n3", ttl); !fresh {
		t.Fatal("a new nonce is not fresh after a restart")
	}
	s.Close()

	// Past every expiry: the nonces are fresh again and the old files are gone.
	clock.Add(int64(3 * ttl))
	s, err = OpenFileNonceStore(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := s.Len(); n != 0 {
		t.Fatalf("%d nonces loaded after all expired", n)
	}
	if fresh, _ := s.Use(ctx, keys[0], ttl); !fresh {
		t.Fatal("an expired nonce is not fresh")
	}
	files, _ := filepath.Glob(filepath.Join(dir, nonceFilePrefix+"*"))
	if len(files) != 1 {
		t.Fatalf("journal files after expiry: %v, want only the current bucket's", files)
	}
}

// A torn last line — the process killed in the middle of a write — and lines that are not the
// journal's are ignored; the complete lines before it still count.
func TestFileNonceStoreTornLine(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	exp := now.Add(time.Minute).UnixNano()
	b := exp / int64(5*time.Minute)
	content := strconv.FormatInt(exp, 10) + " azE\n" + // "k1"
		"garbage\n" + "12 !!!\n" +
		strconv.FormatInt(exp, 10) + " azI" // "k2", torn: no newline
	if err := os.WriteFile(filepath.Join(dir, nonceFilePrefix+strconv.FormatInt(b, 10)+nonceFileSuffix), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFileNonceStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if fresh, _ := s.Use(ctx, "k1", 5*time.Minute); fresh {
		t.Error("a journalled nonce is fresh")
	}
	if fresh, _ := s.Use(ctx, "k2", 5*time.Minute); !fresh {
		t.Error("the nonce of a torn line counts as used")
	}
}

// Of many concurrent uses of one nonce exactly one is fresh, and the journal holds it once.
func TestFileNonceStoreConcurrent(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFileNonceStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if ok, err := s.Use(context.Background(), "kid\x00same", time.Minute); err == nil && ok {
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	s.Close()
	if fresh.Load() != 1 {
		t.Fatalf("%d fresh uses of one nonce, want 1", fresh.Load())
	}
	s2, err := OpenFileNonceStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Len() != 1 {
		t.Fatalf("%d nonces loaded, want 1", s2.Len())
	}
}

// A journal that cannot be written denies: the error is ErrUnavailable, never a fresh answer.
func TestFileNonceStoreWriteFailureDenies(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFileNonceStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil { // a file where the directory was
		t.Fatal(err)
	}
	fresh, err := s.Use(context.Background(), "k\x00n", time.Minute)
	if fresh || err == nil {
		t.Fatalf("Use with an unwritable journal: fresh=%v err=%v, want a denial", fresh, err)
	}
}

func FuzzParseNonceLine(f *testing.F) {
	for _, s := range []string{"1 azE", "0 ", " azE", "-5 AAAA", "99999999999999999999 azE", "1 a\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		exp, key, ok := parseNonceLine(line)
		if !ok {
			return
		}
		if key == "" {
			t.Fatalf("%q: accepted an empty key", line)
		}
		// What parses is what Use writes for that key and expiry.
		got := strconv.FormatInt(exp.UnixNano(), 10)
		if _, k2, ok2 := parseNonceLine([]byte(got + " " + base64.RawURLEncoding.EncodeToString([]byte(key)))); !ok2 || k2 != key {
			t.Fatalf("%q: key %q does not round-trip", line, key)
		}
	})
}

// A store whose ttls vary (outcome claims: up to an hour and a minute, less the time the
// outcome took to come) keeps its entries across restarts only with a fixed file width: with
// the first Use's ttl as the width, the next process reads the previous one's file names under
// another width, finds them long expired, and deletes live entries at its first rotation.
func TestFileNonceStoreFixedWidthAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	ctx := context.Background()
	open := func() *FileNonceStore {
		s, err := OpenFileNonceStoreWidth(dir, 5*time.Minute, now)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	if fresh, err := s.Use(ctx, "\x00claim\x00a", 61*time.Minute); !fresh || err != nil {
		t.Fatalf("first use: %v %v", fresh, err)
	}
	s.Close()
	// The next process's first entry has another ttl and rotates to a new file.
	clock.Add(int64(time.Minute))
	s = open()
	if fresh, err := s.Use(ctx, "\x00claim\x00b", 2*time.Minute); !fresh || err != nil {
		t.Fatalf("use after a restart: %v %v", fresh, err)
	}
	s.Close()
	clock.Add(int64(time.Minute))
	s = open()
	defer s.Close()
	if fresh, err := s.Use(ctx, "\x00claim\x00a", time.Hour); fresh || err != nil {
		t.Fatalf("an entry of an hour, two restarts later: fresh=%v err=%v (forgotten)", fresh, err)
	}
}

// Adopt carries over the live entries of another journal that keep accepts, and only those.
func TestFileNonceStoreAdopt(t *testing.T) {
	ctx := context.Background()
	oldDir, newDir := t.TempDir(), t.TempDir()
	old, err := OpenFileNonceStore(oldDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"\x00claim\x00a", "key\x00nonce"} {
		if _, err := old.Use(ctx, k, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	s, err := OpenFileNonceStoreWidth(newDir, 5*time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Adopt(oldDir, func(k string) bool { return k[0] == 0 }); err != nil {
		t.Fatal(err)
	}
	if fresh, _ := s.Use(ctx, "\x00claim\x00a", time.Hour); fresh {
		t.Error("an adopted entry is fresh")
	}
	if fresh, _ := s.Use(ctx, "key\x00nonce", time.Hour); !fresh {
		t.Error("an entry keep refused was adopted")
	}
}

// An upgrade: the old journal held claims (an hour) and signature nonces (minutes) together,
// its files named by the width of the first Use — here a claim's hour. The signature store,
// opened on that directory after the upgrade, rotates at its own width and deletes those files
// as long expired; an adopted claim must still be refused after the next restart, so adoption
// journals it in the claims' own directory.
func TestFileNonceStoreAdoptedSurvivesSecondRestart(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	sigDir, claimDir := t.TempDir(), t.TempDir()
	const claim = "\x00claim\x00a"
	isClaim := func(k string) bool { return k[0] == 0 }
	old, err := OpenFileNonceStore(sigDir, clock)
	if err != nil {
		t.Fatal(err)
	}
	if fresh, err := old.Use(ctx, claim, time.Hour); err != nil || !fresh {
		t.Fatal(fresh, err)
	}
	old.Close()
	start := func() (sig, claims *FileNonceStore) {
		t.Helper()
		sig, err := OpenFileNonceStore(sigDir, clock)
		if err != nil {
			t.Fatal(err)
		}
		claims, err = OpenFileNonceStoreWidth(claimDir, 5*time.Minute, clock)
		if err != nil {
			t.Fatal(err)
		}
		if err := claims.Adopt(sigDir, isClaim); err != nil {
			t.Fatal(err)
		}
		return sig, claims
	}
	sig, claims := start()
	now = now.Add(time.Minute)
	if _, err := sig.Use(ctx, "key\x00nonce-1", 330*time.Second); err != nil { // rotates at its width
		t.Fatal(err)
	}
	sig.Close()
	claims.Close()
	sig, claims = start()
	defer sig.Close()
	defer claims.Close()
	if fresh, err := claims.Use(ctx, claim, time.Hour); err != nil || fresh {
		t.Fatalf("a claim adopted before the last restart, within its hour: fresh=%v err=%v, want refused", fresh, err)
	}
}

// Two keys whose digests collide under the seeds of the process that loads the journal: the
// short-lived one loaded first must not stand in for the long-lived one, or the long-lived one
// is forgotten with the short one's bucket and accepted a second time while still valid.
func TestFileClaimStoreRestoreCollision(t *testing.T) {
	dir := t.TempDir()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	ctx := context.Background()

	s, err := OpenFileClaimStore(dir, ClaimBucketWidth, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if fresh, err := s.Use(ctx, "short", 2*time.Minute); err != nil || !fresh {
		t.Fatalf("first use of short: fresh=%v err=%v", fresh, err)
	}
	if fresh, err := s.Use(ctx, "long", time.Hour); err != nil || !fresh {
		t.Fatalf("first use of long: fresh=%v err=%v", fresh, err)
	}
	s.Close()

	// The next process draws seeds under which "short" and "long" collide.
	seed := maphash.MakeSeed()
	colliding := func(key string) uint64 {
		if key == "short" || key == "long" {
			return 42
		}
		return wordDigest(maphash.String(seed, key))
	}
	mem := &MemoryClaimStore{newDigestStore(now, ClaimBucketWidth, DefaultMaxClaims, colliding, func(d uint64) uint64 { return d })}
	s, err = openFileStore(dir, ClaimBucketWidth, now, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	clock.Add(int64(10 * time.Minute)) // past short's bucket, long still valid
	s.Sweep()
	if fresh, err := s.Use(ctx, "long", time.Hour); err != nil || fresh {
		t.Fatalf("second use of long after a restart, its collider expired: fresh=%v err=%v (a replay)", fresh, err)
	}
}

// The wall clock stepped forward past a nonce's expiry for a sweep, then set back: the nonce is
// still used, in memory and in the journal read by the next process. Held only for the longest
// lifetime (plus a bucket): a step that stays is then followed, and memory and files freed.
func TestFileNonceStoreClockStepForward(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixNano()
	var wall, mono atomic.Int64
	wall.Store(t0)
	mono.Store(int64(time.Second))
	now := func() time.Time { return time.Unix(0, wall.Load()) }
	open := func() *FileNonceStore {
		mem := NewMemoryNonceStore(now)
		mem.mono = func() time.Duration { return time.Duration(mono.Load()) }
		s, err := openFileStore(dir, 0, now, mem)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()
	const ttl = 5 * time.Minute

	s := open()
	if fresh, err := s.Use(ctx, "k\x00n1", ttl); err != nil || !fresh {
		t.Fatalf("first use: fresh=%v err=%v", fresh, err)
	}
	step := func(wallBy, monoBy time.Duration) {
		wall.Add(int64(wallBy))
		mono.Add(int64(monoBy))
		s.Sweep()
	}
	step(5*time.Second, 5*time.Second)
	step(time.Hour, 5*time.Second) // the step: an hour in five seconds
	step(5*time.Second, 5*time.Second)
	step(-time.Hour, 5*time.Second) // set back
	if fresh, err := s.Use(ctx, "k\x00n1", ttl); err != nil || fresh {
		t.Fatalf("use after the clock stepped forward and back: fresh=%v err=%v (a replay)", fresh, err)
	}
	s.Close()
	s = open()
	if fresh, err := s.Use(ctx, "k\x00n1", ttl); err != nil || fresh {
		t.Fatalf("use after a restart that followed the step: fresh=%v err=%v (a replay)", fresh, err)
	}

	// A step that stays is followed once the longest lifetime and a bucket have run.
	step(2*time.Minute, 2*time.Minute)
	step(time.Hour, 5*time.Second)
	if n := s.Len(); n == 0 {
		t.Fatal("nonces forgotten at a step forward")
	}
	for i := 0; i < 80 && s.Len() > 0; i++ {
		step(5*time.Second, 5*time.Second)
	}
	if n := s.Len(); n != 0 {
		t.Fatalf("%d nonces still held %v after a step that stayed", n, 80*5*time.Second)
	}
	files, _ := filepath.Glob(filepath.Join(dir, nonceFilePrefix+"*"))
	if len(files) > 1 {
		t.Fatalf("journal files after the hold: %v, want at most the current bucket's", files)
	}
	s.Close()
}

// The journals the gateway opens (on the wall clock) hold clock steps back: their memory has the
// monotonic clock to compare with. An injected clock's steps are its caller's.
func TestFileStoresOnWallClockGuardSteps(t *testing.T) {
	n, err := OpenFileNonceStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := OpenFileClaimStore(t.TempDir(), ClaimBucketWidth, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n.mem.(*MemoryNonceStore).mono == nil || c.mem.(*MemoryClaimStore).mono == nil {
		t.Fatal("a journal on the wall clock without the monotonic clock: a clock step forward drops its entries")
	}
	if m := NewMemoryNonceStore(time.Now); m.mono != nil {
		t.Fatal("an injected clock compared with the monotonic one")
	}
}

// limits.max_outcome_claims reaches the claim store: beyond it a claim is refused, not an old one
// forgotten.
func TestFileClaimStoreMax(t *testing.T) {
	c, err := OpenFileClaimStore(t.TempDir(), ClaimBucketWidth, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for i := range 1000 {
		if fresh, err := c.Use(ctx, "c"+strconv.Itoa(i), time.Hour); err != nil || !fresh {
			t.Fatalf("claim %d: fresh=%v err=%v", i, fresh, err)
		}
	}
	if fresh, err := c.Use(ctx, "c1000", time.Hour); fresh || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("claim beyond the bound: fresh=%v err=%v, want ErrUnavailable", fresh, err)
	}
}

// The clock-step guard's state is shared by every Use and the sweeper: under both at once, on the
// wall clock, each nonce is fresh exactly once and none is forgotten early.
func TestFileNonceStoreSweepUnderUse(t *testing.T) {
	s, err := OpenFileNonceStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var sweeps sync.WaitGroup
	sweeps.Go(func() {
		for ctx.Err() == nil {
			s.Sweep()
		}
	})
	var fresh [64]atomic.Int32
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range fresh {
				k := "kid\x00" + strconv.Itoa((i+g)%len(fresh))
				if ok, err := s.Use(ctx, k, time.Minute); err == nil && ok {
					fresh[(i+g)%len(fresh)].Add(1)
				}
			}
		})
	}
	wg.Wait()
	cancel()
	sweeps.Wait()
	for i := range fresh {
		if n := fresh[i].Load(); n != 1 {
			t.Fatalf("nonce %d fresh %d times, want 1", i, n)
		}
	}
}

// A wall clock set back (NTP correcting a fast clock) must not make the store forget what it
// records afterwards: the forgetting horizon never runs ahead of the wall clock, so an entry is
// kept until the clock that recorded it passes its expiry. With the horizon kept at the old,
// later time, every nonce used after a set-back larger than a lifetime was dropped at the next
// Use and accepted again.
func TestFileNonceStoreClockStepBack(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixNano()
	var wall, mono atomic.Int64
	wall.Store(t0)
	mono.Store(int64(time.Second))
	now := func() time.Time { return time.Unix(0, wall.Load()) }
	mem := NewMemoryNonceStore(now)
	mem.mono = func() time.Duration { return time.Duration(mono.Load()) }
	s, err := openFileStore(t.TempDir(), 0, now, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const ttl = 5 * time.Minute
	if _, err := s.Use(ctx, "k\x00first", ttl); err != nil {
		t.Fatal(err)
	}
	step := func(wallBy, monoBy time.Duration) {
		wall.Add(int64(wallBy))
		mono.Add(int64(monoBy))
		s.Sweep()
	}
	step(5*time.Second, 5*time.Second)
	step(-10*time.Minute, 5*time.Second) // set back by more than a lifetime and a bucket
	for i := range 5 {
		key := fmt.Sprintf("k\x00n%d", i)
		if fresh, err := s.Use(ctx, key, ttl); err != nil || !fresh {
			t.Fatalf("first use of %q: fresh=%v err=%v", key, fresh, err)
		}
		step(time.Second, time.Second)
		if fresh, err := s.Use(ctx, key, ttl); err != nil || fresh {
			t.Fatalf("second use of %q after the clock was set back: fresh=%v err=%v (a replay)", key, fresh, err)
		}
	}
}
