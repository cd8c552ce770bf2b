package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// API keys look like pcl_<id>_<secret>: id is 16 hex characters (8 random bytes) that name the
// stored record so lookup is one map or index access; secret is 32 random bytes, base64url.
//
// Only SHA-256(key) is stored. A slow password hash (bcrypt, argon2) exists to make guessing a
// low-entropy password expensive; a 256-bit random secret cannot be guessed at any speed, so a
// fast hash loses nothing and keeps verification at about a microsecond on every request.
// The comparison is constant-time all the same so that response timing says nothing about how
// much of a guessed hash matched.
const (
	APIKeyPrefix = "pcl_"
	keyIDBytes   = 8
	secretBytes  = 32
	// MaxActiveKeys is how many unexpired, unrevoked keys an agent may hold: two, so that a key
	// can be rotated (create the new one, deploy it, revoke the old one) without downtime.
	MaxActiveKeys = 2
	maxAPIKeyLen  = 128
)

// KeyRecord is what is stored about an API key: never the key itself.
type KeyRecord struct {
	ID        string    `json:"id"`
	AgentID   string    `json:"agent_id"`
	Hash      string    `json:"sha256"` // hex SHA-256 of the whole key string
	Label     string    `json:"label,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Active reports whether the key can authenticate at now.
func (k KeyRecord) Active(now time.Time) bool {
	return k.RevokedAt.IsZero() && (k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt))
}

// Status is "active", "expired" or "revoked" at now.
func (k KeyRecord) Status(now time.Time) string {
	switch {
	case !k.RevokedAt.IsZero():
		return "revoked"
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return "expired"
	}
	return "active"
}

// KeyStore keeps API key records. Implementations must be safe for concurrent use.
type KeyStore interface {
	// Lookup returns the record with id, or an error wrapping ErrKeyNotFound.
	Lookup(ctx context.Context, id string) (KeyRecord, error)
	// Insert adds rec unless its agent already has MaxActiveKeys active keys at now (ErrKeyLimit).
	// The check and the insert are atomic.
	Insert(ctx context.Context, rec KeyRecord, now time.Time) error
	// List returns the records of agentID (all agents when empty), oldest first.
	List(ctx context.Context, agentID string) ([]KeyRecord, error)
	// Revoke marks the key revoked at at; revoking a revoked key keeps the first time.
	Revoke(ctx context.Context, id string, at time.Time) error
}

// NewAPIKey generates a key for agentID valid for ttl (0: no expiry). It returns the key — to be
// shown once and never again — and the record to store.
func NewAPIKey(agentID, label string, now time.Time, ttl time.Duration) (string, KeyRecord, error) {
	var id [keyIDBytes]byte
	var secret [secretBytes]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", KeyRecord{}, fmt.Errorf("new api key: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", KeyRecord{}, fmt.Errorf("new api key: %w", err)
	}
	kid := hex.EncodeToString(id[:])
	key := APIKeyPrefix + kid + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(key))
	rec := KeyRecord{ID: kid, AgentID: agentID, Hash: hex.EncodeToString(sum[:]), Label: label, CreatedAt: now.UTC()}
	if ttl > 0 {
		rec.ExpiresAt = now.Add(ttl).UTC()
	}
	return key, rec, nil
}

// CreateAPIKey generates a key for agentID and stores its record. ErrKeyLimit when the agent
// already holds MaxActiveKeys active keys (revoke one first).
func CreateAPIKey(ctx context.Context, ks KeyStore, agentID, label string, now time.Time, ttl time.Duration) (string, KeyRecord, error) {
	if !idPattern.MatchString(agentID) {
		return "", KeyRecord{}, fmt.Errorf("create api key: agent id %q must match %s", agentID, idPattern)
	}
	key, rec, err := NewAPIKey(agentID, label, now, ttl)
	if err != nil {
		return "", KeyRecord{}, err
	}
	if err := ks.Insert(ctx, rec, now); err != nil {
		return "", KeyRecord{}, fmt.Errorf("create api key for %s: %w", agentID, err)
	}
	return key, rec, nil
}

// APIKeyID returns the id part of a key, or ErrMalformed. It does not check the secret.
func APIKeyID(key string) (string, error) {
	if len(key) > maxAPIKeyLen || !strings.HasPrefix(key, APIKeyPrefix) {
		return "", ErrMalformed
	}
	rest := key[len(APIKeyPrefix):]
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 2*keyIDBytes || len(secret) != base64.RawURLEncoding.EncodedLen(secretBytes) {
		return "", ErrMalformed
	}
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return "", ErrMalformed
	}
	return id, nil
}

// checkAPIKey authenticates key against ks at now and returns the key's record.
func checkAPIKey(ctx context.Context, ks KeyStore, key string, now time.Time) (KeyRecord, error) {
	id, err := APIKeyID(key)
	if err != nil {
		return KeyRecord{}, fmt.Errorf("api key: %w", err)
	}
	rec, err := ks.Lookup(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return KeyRecord{}, fmt.Errorf("api key %s: %w", id, ErrInvalid)
		}
		return KeyRecord{}, fmt.Errorf("api key %s: lookup: %w: %w", id, ErrUnavailable, err)
	}
	want, err := hex.DecodeString(rec.Hash)
	if err != nil || len(want) != sha256.Size {
		return KeyRecord{}, fmt.Errorf("api key %s: stored hash is corrupt: %w", id, ErrUnavailable)
	}
	got := sha256.Sum256([]byte(key))
	// The hash is compared before revocation and expiry are looked at, so that without the
	// secret nobody learns anything about a key id's state.
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return KeyRecord{}, fmt.Errorf("api key %s: %w", id, ErrInvalid)
	}
	if !rec.RevokedAt.IsZero() {
		return KeyRecord{}, fmt.Errorf("api key %s: %w", id, ErrRevoked)
	}
	if !rec.ExpiresAt.IsZero() && !now.Before(rec.ExpiresAt) {
		return KeyRecord{}, fmt.Errorf("api key %s: %w", id, ErrExpired)
	}
	return rec, nil
}

func isNotFound(err error) bool { return errors.Is(err, ErrKeyNotFound) }

// MemoryKeyStore is a KeyStore in memory, for tests and for embedding.
type MemoryKeyStore struct {
	mu   sync.RWMutex
	keys map[string]KeyRecord
}

var _ KeyStore = (*MemoryKeyStore)(nil)

// NewMemoryKeyStore returns an empty store.
func NewMemoryKeyStore() *MemoryKeyStore { return &MemoryKeyStore{keys: map[string]KeyRecord{}} }

func (m *MemoryKeyStore) Lookup(_ context.Context, id string) (KeyRecord, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	rec, ok := m.keys[id]
	if !ok {
		return KeyRecord{}, ErrKeyNotFound
	}
	return rec, nil
}

func (m *MemoryKeyStore) Insert(_ context.Context, rec KeyRecord, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return insertRecord(m.keys, rec, now)
}

// insertRecord is the shared check-and-insert of the in-memory and file stores.
func insertRecord(keys map[string]KeyRecord, rec KeyRecord, now time.Time) error {
	if _, dup := keys[rec.ID]; dup {
		return fmt.Errorf("insert api key: duplicate id %s", rec.ID)
	}
	active := 0
	for _, k := range keys {
		if k.AgentID == rec.AgentID && k.Active(now) {
			active++
		}
	}
	if active >= MaxActiveKeys {
		return ErrKeyLimit
	}
	keys[rec.ID] = rec
	return nil
}

func listRecords(keys map[string]KeyRecord, agentID string) []KeyRecord {
	var out []KeyRecord
	for _, k := range keys {
		if agentID == "" || k.AgentID == agentID {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b KeyRecord) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func (m *MemoryKeyStore) List(_ context.Context, agentID string) ([]KeyRecord, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return listRecords(m.keys, agentID), nil
}

func (m *MemoryKeyStore) Revoke(_ context.Context, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return revokeRecord(m.keys, id, at)
}

func revokeRecord(keys map[string]KeyRecord, id string, at time.Time) error {
	rec, ok := keys[id]
	if !ok {
		return ErrKeyNotFound
	}
	if rec.RevokedAt.IsZero() {
		rec.RevokedAt = at.UTC()
		keys[id] = rec
	}
	return nil
}
