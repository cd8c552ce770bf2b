package mcp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Definition returns the canonical JSON of what a tool tells a model — its name, description,
// input schema and annotations — and the hex SHA-256 that pins it. Canonical: object keys sorted
// at every level, no insignificant whitespace, so the same definition always hashes the same.
func Definition(t *sdk.Tool) (json.RawMessage, string, error) {
	raw, err := json.Marshal(map[string]any{"name": t.Name, "description": t.Description,
		"inputSchema": t.InputSchema, "annotations": t.Annotations})
	if err != nil {
		return nil, "", fmt.Errorf("encode tool definition: %w", err)
	}
	// A round trip through any sorts the keys of nested objects that arrived as structs.
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, "", fmt.Errorf("canonicalise tool definition: %w", err)
	}
	if raw, err = json.Marshal(v); err != nil {
		return nil, "", fmt.Errorf("canonicalise tool definition: %w", err)
	}
	sum := sha256.Sum256(raw)
	return raw, hex.EncodeToString(sum[:]), nil
}

// PinState is what Check found.
type PinState int

const (
	PinSame     PinState = iota // the pinned definition: usable
	PinNew                      // first sight: pinned now, usable
	PinChanged                  // a new, unapproved definition: blocked (reported once per definition)
	PinBlocked                  // the same unapproved change seen again: blocked
	PinApproved                 // an operator approved this definition since it was last seen: usable
)

// ErrNoPendingChange is returned by Approve for a tool whose definition has not changed.
var ErrNoPendingChange = errors.New("no changed definition waiting for approval")

// Pin is one tool's entry in the pin file.
type Pin struct {
	// Hash is the approved definition's SHA-256.
	Hash     string    `json:"hash"`
	PinnedAt time.Time `json:"pinned_at"`
	// Pending is a changed definition's hash, blocked until approved.
	Pending   string    `json:"pending,omitempty"`
	ChangedAt time.Time `json:"changed_at,omitzero"`
	// Approved is set by Approve and cleared when the gateway has recorded the approval.
	Approved   bool   `json:"approved,omitempty"`
	ApprovedBy string `json:"approved_by,omitempty"`
	// Reviewed is the hash of what an operator approved of a definition held as suspicious
	// (through an approval request: the definition with its title and output schema): usable
	// while the definition is still Hash and what is scanned of it still Reviewed.
	Reviewed string `json:"reviewed,omitempty"`
}

// PinStore keeps tool pins in a JSON file (in the data directory), rewritten atomically, so the
// gateway and the `portcullis mcp pins` command can share it.
type PinStore struct {
	path string
	mu   sync.Mutex
	// cache is the file's content as last read or written, valid while the file's size and
	// modification time are unchanged (another process — `portcullis mcp pins approve` —
	// rewrites it by rename, which changes both or at least the time).
	cache   map[string]*Pin
	cacheAt time.Time
	cacheSz int64
}

// OpenPins uses the pin file at path (created on first write).
func OpenPins(path string) *PinStore { return &PinStore{path: path} }

func (p *PinStore) load() (map[string]*Pin, error) {
	st, err := os.Stat(p.path)
	if errors.Is(err, os.ErrNotExist) {
		p.cache = nil
		return map[string]*Pin{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pins: %w", err)
	}
	if p.cache != nil && st.ModTime().Equal(p.cacheAt) && st.Size() == p.cacheSz {
		return p.cache, nil
	}
	b, err := os.ReadFile(p.path)
	if err != nil {
		return nil, fmt.Errorf("read pins: %w", err)
	}
	m := map[string]*Pin{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read pins %s: %w", p.path, err)
	}
	p.cache, p.cacheAt, p.cacheSz = m, st.ModTime(), st.Size()
	return m, nil
}

func (p *PinStore) save(m map[string]*Pin) error {
	p.cache = nil // m may hold unsaved changes until the rename succeeds
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode pins: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p.path), ".pins-*")
	if err != nil {
		return fmt.Errorf("write pins: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write pins: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write pins: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write pins: %w", err)
	}
	if err := os.Rename(tmp.Name(), p.path); err != nil {
		p.cache = nil
		return fmt.Errorf("write pins: %w", err)
	}
	if st, err := os.Stat(p.path); err == nil {
		p.cache, p.cacheAt, p.cacheSz = m, st.ModTime(), st.Size()
	} else {
		p.cache = nil
	}
	return nil
}

// Check compares a tool's current definition hash with its pin, pinning it on first sight.
func (p *PinStore) Check(tool, hash string) (PinState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.load()
	if err != nil {
		return PinBlocked, err
	}
	e := m[tool]
	now := time.Now().UTC()
	switch {
	case e == nil:
		m[tool] = &Pin{Hash: hash, PinnedAt: now}
		return PinNew, p.save(m)
	case e.Hash == hash && e.Approved:
		e.Approved = false
		return PinApproved, p.save(m)
	case e.Hash == hash:
		if e.Pending != "" {
			// The server went back to the approved definition: the change is moot.
			e.Pending, e.ChangedAt = "", time.Time{}
			return PinSame, p.save(m)
		}
		return PinSame, nil
	case e.Pending == hash:
		return PinBlocked, nil
	default:
		e.Pending, e.ChangedAt = hash, now
		return PinChanged, p.save(m)
	}
}

// Approve accepts a tool's changed definition: the gateway unblocks it the next time it sees it.
func (p *PinStore) Approve(tool, by string) (Pin, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.load()
	if err != nil {
		return Pin{}, err
	}
	e := m[tool]
	if e == nil || e.Pending == "" {
		return Pin{}, fmt.Errorf("approve pin for %q: %w", tool, ErrNoPendingChange)
	}
	e.Hash, e.Pending, e.ChangedAt, e.Approved, e.ApprovedBy = e.Pending, "", time.Time{}, true, by
	e.PinnedAt = time.Now().UTC()
	if err := p.save(m); err != nil {
		return Pin{}, err
	}
	return *e, nil
}

// Reviewed reports whether hash is tool's pinned definition and an operator approved it, as
// scanned (reviewed), after it was held as suspicious (Admit).
func (p *PinStore) Reviewed(tool, hash, reviewed string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.load()
	if err != nil {
		return false, err
	}
	e := m[tool]
	return e != nil && e.Hash == hash && e.Reviewed == reviewed, nil
}

// Admit pins hash as tool's definition: a held definition an operator approved, as scanned
// (reviewed). A change waiting for `mcp pins approve` is superseded by it.
func (p *PinStore) Admit(tool, hash, reviewed string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.load()
	if err != nil {
		return err
	}
	e := m[tool]
	if e == nil {
		e = &Pin{}
		m[tool] = e
	}
	e.Hash, e.Reviewed, e.PinnedAt = hash, reviewed, time.Now().UTC()
	e.Pending, e.ChangedAt, e.Approved = "", time.Time{}, false
	return p.save(m)
}

// NamedPin is a pin with its tool's name.
type NamedPin struct {
	Tool string
	Pin
}

// List returns every pin, sorted by tool name.
func (p *PinStore) List() ([]NamedPin, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.load()
	if err != nil {
		return nil, err
	}
	out := make([]NamedPin, 0, len(m))
	for k, v := range m {
		out = append(out, NamedPin{Tool: k, Pin: *v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tool < out[j].Tool })
	return out, nil
}
