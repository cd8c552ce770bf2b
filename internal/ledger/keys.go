package ledger

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Key files inside a data directory.
const (
	SigningKeyFile  = "ledger.key"      // the current note signer key, mode 0600
	PublicKeysFile  = "ledger.pub"      // every verifier key the ledger has used, oldest first
	HashKeyFile     = "ledger.hashkey"  // hex HMAC-SHA256 key for sensitive values, mode 0600
	nextSigningFile = "ledger.key.next" // a rotation in progress
	// WitnessFile is the latest checkpoint the gateway signed, kept outside the store.
	WitnessFile = "ledger.witness"
)

// ErrNoKeys: the data directory has no ledger keys.
var ErrNoKeys = errors.New("no ledger keys")

// Keys are a ledger's signing key, the public keys it has used and its hash key.
type Keys struct {
	Signer    note.Signer
	SignerKey string   // the current signer key (secret)
	Public    []string // verifier keys, oldest first; the last belongs to Signer
	HashKey   []byte
}

// Verifiers returns the ledger's public keys as note verifiers.
func (k *Keys) Verifiers() (note.Verifiers, []note.Verifier, error) {
	return ParseVerifiers(k.Public)
}

// ParseVerifiers parses note verifier keys (blank lines and # comments ignored).
func ParseVerifiers(keys []string) (note.Verifiers, []note.Verifier, error) {
	var list []note.Verifier
	for _, k := range keys {
		k = strings.TrimSpace(k)
		if k == "" || strings.HasPrefix(k, "#") {
			continue
		}
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, nil, fmt.Errorf("parse verifier key %q: %w", k, err)
		}
		list = append(list, v)
	}
	if len(list) == 0 {
		return nil, nil, fmt.Errorf("parse verifier keys: %w", ErrNoKeys)
	}
	return note.VerifierList(list...), list, nil
}

// NewOrigin returns a fresh log origin (also the signing key's name): unique per ledger so
// that checkpoints of two ledgers can never be confused.
func NewOrigin() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return "portcullis.ledger/" + hex.EncodeToString(b[:])
}

// GenerateKeys creates keys for a new ledger in dir. It refuses to overwrite existing keys.
func GenerateKeys(dir, origin string) (*Keys, error) {
	if _, err := os.Stat(filepath.Join(dir, SigningKeyFile)); err == nil {
		return nil, fmt.Errorf("generate ledger keys: %s already exists", filepath.Join(dir, SigningKeyFile))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("generate ledger keys: %w", err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return nil, fmt.Errorf("generate ledger keys: %w", err)
	}
	hk := make([]byte, 32)
	if _, err := rand.Read(hk); err != nil {
		return nil, fmt.Errorf("generate ledger keys: %w", err)
	}
	if err := writeFileSync(filepath.Join(dir, HashKeyFile), []byte(hex.EncodeToString(hk)+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := writeFileSync(filepath.Join(dir, PublicKeysFile), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := writeFileSync(filepath.Join(dir, SigningKeyFile), []byte(skey+"\n"), 0o600); err != nil {
		return nil, err
	}
	return LoadKeys(dir)
}

// LoadKeys reads the keys in dir. A rotation that never completed (a crash between writing the
// next key and switching to it) is abandoned: the log keeps the old key, which stays valid.
func LoadKeys(dir string) (*Keys, error) {
	b, err := os.ReadFile(filepath.Join(dir, SigningKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("load ledger keys from %s: %w", dir, ErrNoKeys)
	}
	if err != nil {
		return nil, fmt.Errorf("load ledger keys: %w", err)
	}
	skey := strings.TrimSpace(string(b))
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("load ledger keys: %s: %w", SigningKeyFile, err)
	}
	pub, err := ReadPublicKeys(filepath.Join(dir, PublicKeysFile))
	if err != nil {
		return nil, err
	}
	hb, err := os.ReadFile(filepath.Join(dir, HashKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load ledger keys: %w", err)
	}
	hk, err := hex.DecodeString(strings.TrimSpace(string(hb)))
	if err != nil || len(hk) < 16 {
		return nil, fmt.Errorf("load ledger keys: %s is not a hex key of at least 16 bytes", HashKeyFile)
	}
	k := &Keys{Signer: s, SignerKey: skey, Public: pub, HashKey: hk}
	if _, list, err := k.Verifiers(); err != nil {
		return nil, err
	} else if v := list[len(list)-1]; v.Name() != s.Name() || v.KeyHash() != s.KeyHash() {
		// The public key of the signer must be listed last; if not, the files disagree.
		found := false
		for _, v := range list {
			if v.Name() == s.Name() && v.KeyHash() == s.KeyHash() {
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("load ledger keys: the signing key's public key is not in %s", PublicKeysFile)
		}
	}
	return k, nil
}

// ReadPublicKeys reads a file of verifier keys, one a line.
func ReadPublicKeys(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read public keys: %w", err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			keys = append(keys, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read public keys %s: %w", path, err)
	}
	return keys, nil
}

// prepareRotation creates the next key of dir's ledger, records it as pending and lists its
// public key (a verifier may meet it in a checkpoint as soon as the rotation commits).
func prepareRotation(dir, origin string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return "", "", fmt.Errorf("rotate ledger key: %w", err)
	}
	if err := writeFileSync(filepath.Join(dir, nextSigningFile), []byte(skey+"\n"), 0o600); err != nil {
		return "", "", err
	}
	f, err := os.OpenFile(filepath.Join(dir, PublicKeysFile), os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return "", "", fmt.Errorf("rotate ledger key: %w", err)
	}
	if _, err := f.WriteString(vkey + "\n"); err != nil {
		f.Close()
		return "", "", fmt.Errorf("rotate ledger key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", "", fmt.Errorf("rotate ledger key: %w", err)
	}
	return skey, vkey, f.Close()
}

// finishRotation makes the next key current.
func finishRotation(dir string) error {
	if err := os.Rename(filepath.Join(dir, nextSigningFile), filepath.Join(dir, SigningKeyFile)); err != nil {
		return fmt.Errorf("rotate ledger key: %w", err)
	}
	return syncDir(dir)
}

// writeFileSync replaces path with data durably: a temporary file, fsync, rename, fsync of the
// directory — a crash leaves the old file or the new one, never a torn one.
func writeFileSync(path string, data []byte, perm os.FileMode) error {
	return writeFileWith(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeFileWith is writeFileSync with the content written by fn.
func writeFileWith(path string, perm os.FileMode, fn func(w io.Writer) error) error {
	// A temporary file of its own in the same directory, so that two writers never share one
	// and the rename never crosses a file system.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing left to remove
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := fn(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
