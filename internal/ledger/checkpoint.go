package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is the body of a C2SP tlog-checkpoint: the log's origin, its size and the RFC 6962
// root hash of its first Size records.
type Checkpoint struct {
	Origin string
	Size   uint64
	Hash   [sha256.Size]byte
	// Extra holds any extension lines after the root hash. This ledger writes one, "time
	// <RFC 3339>", when it signs (SignedAt); others are kept, signed, and unused.
	Extra []string
}

// timeExtension starts the extension line that says when the ledger signed a checkpoint.
// Verification bounds the records after the newest checkpoint by it: that time is signed,
// while a record's own time is whatever whoever wrote the record put there.
const timeExtension = "time "

// withTime returns c with its signing time as an extension line (UTC, nanoseconds).
func withTime(c Checkpoint, t time.Time) Checkpoint {
	c.Extra = append(c.Extra[:len(c.Extra):len(c.Extra)], timeExtension+t.UTC().Format(time.RFC3339Nano))
	return c
}

// SignedAt returns when the ledger signed c, from its "time" extension line; ok is false when
// it has none (checkpoints signed before the ledger wrote one). A second time line, or one
// that is not canonical RFC 3339 in UTC, is ErrMalformedCheckpoint.
func (c Checkpoint) SignedAt() (t time.Time, ok bool, err error) {
	for _, e := range c.Extra {
		v, found := strings.CutPrefix(e, timeExtension)
		if !found {
			continue
		}
		if ok {
			return time.Time{}, false, fmt.Errorf("%w: more than one time line", ErrMalformedCheckpoint)
		}
		if t, err = time.Parse(time.RFC3339Nano, v); err != nil || t.UTC().Format(time.RFC3339Nano) != v {
			return time.Time{}, false, fmt.Errorf("%w: time line %q is not RFC 3339 in UTC", ErrMalformedCheckpoint, v)
		}
		ok = true
	}
	return t, ok, nil
}

// ErrMalformedCheckpoint: a checkpoint's text is not in the tlog-checkpoint format.
var ErrMalformedCheckpoint = errors.New("malformed checkpoint")

// Text returns the checkpoint body: "<origin>\n<size>\n<base64 root>\n" plus extension lines.
func (c Checkpoint) Text() string {
	var b strings.Builder
	b.WriteString(c.Origin)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatUint(c.Size, 10))
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(c.Hash[:]))
	b.WriteByte('\n')
	for _, e := range c.Extra {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	return b.String()
}

// ParseCheckpoint parses a checkpoint body strictly: a non-empty origin, a canonical decimal
// size, a base64 SHA-256 root, optional non-empty extension lines, a final newline.
func ParseCheckpoint(text string) (Checkpoint, error) {
	var c Checkpoint
	if !strings.HasSuffix(text, "\n") {
		return c, fmt.Errorf("%w: does not end in a newline", ErrMalformedCheckpoint)
	}
	lines := strings.Split(text[:len(text)-1], "\n")
	if len(lines) < 3 {
		return c, fmt.Errorf("%w: %d lines, want at least 3 (origin, size, root)", ErrMalformedCheckpoint, len(lines))
	}
	if lines[0] == "" {
		return c, fmt.Errorf("%w: empty origin", ErrMalformedCheckpoint)
	}
	c.Origin = lines[0]
	s := lines[1]
	if s == "" || len(s) > 20 || (s[0] == '0' && len(s) > 1) || strings.TrimLeft(s, "0123456789") != "" {
		return c, fmt.Errorf("%w: size %q is not a canonical decimal", ErrMalformedCheckpoint, s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return c, fmt.Errorf("%w: size: %v", ErrMalformedCheckpoint, err)
	}
	c.Size = n
	h, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(h) != sha256.Size {
		return c, fmt.Errorf("%w: root hash is not base64 of 32 bytes", ErrMalformedCheckpoint)
	}
	copy(c.Hash[:], h)
	for _, e := range lines[3:] {
		if e == "" {
			return c, fmt.Errorf("%w: empty extension line", ErrMalformedCheckpoint)
		}
		c.Extra = append(c.Extra, e)
	}
	return c, nil
}

// SignCheckpoint signs c as a note with every signer (several during a key rotation).
func SignCheckpoint(c Checkpoint, signers ...note.Signer) ([]byte, error) {
	b, err := note.Sign(&note.Note{Text: c.Text()}, signers...)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return b, nil
}

// OpenCheckpoint checks a signed checkpoint against the known verifiers and parses it. It
// fails if no known key signed it, if a known key's signature is bad, or if the origin is not
// the name of a key that signed it. The returned note lists the verified signatures.
func OpenCheckpoint(msg []byte, known note.Verifiers) (Checkpoint, *note.Note, error) {
	if err := canonicalSignatures(msg); err != nil {
		return Checkpoint{}, nil, err
	}
	n, err := note.Open(msg, known)
	if err != nil {
		var une *note.UnverifiedNoteError
		if errors.As(err, &une) {
			return Checkpoint{}, nil, fmt.Errorf("open checkpoint: no signature by a trusted key (foreign or missing signature)")
		}
		return Checkpoint{}, nil, fmt.Errorf("open checkpoint: %w", err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return c, n, err
	}
	for _, s := range n.Sigs {
		if s.Name == c.Origin {
			return c, n, nil
		}
	}
	return c, n, fmt.Errorf("open checkpoint: origin %q is not the name of a key that signed it", c.Origin)
}

// parseUnverified reads a checkpoint's body without checking signatures (to order checkpoints
// before the keys that signed them are known).
func parseUnverified(msg []byte) (Checkpoint, error) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return Checkpoint{}, fmt.Errorf("%w: no signature block", ErrMalformedCheckpoint)
	}
	return ParseCheckpoint(string(msg[:i+1]))
}

// canonicalSignatures rejects signature lines whose base64 is not in canonical form: base64
// decoding ignores the padding bits of the last character, so without this check a changed
// byte could leave a signature that still verifies.
func canonicalSignatures(msg []byte) error {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return fmt.Errorf("%w: no signature block", ErrMalformedCheckpoint)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(msg[i+2:]), "\n"), "\n") {
		j := strings.LastIndexByte(line, ' ')
		if j < 0 {
			return fmt.Errorf("%w: signature line without a signature", ErrMalformedCheckpoint)
		}
		b64 := line[j+1:]
		raw, err := base64.StdEncoding.Strict().DecodeString(b64)
		if err != nil || base64.StdEncoding.EncodeToString(raw) != b64 {
			return fmt.Errorf("%w: signature is not canonical base64", ErrMalformedCheckpoint)
		}
	}
	return nil
}
