// Package upauth holds the gateway's own credentials for remote MCP upstreams: headers whose
// values come from the environment or from files (re-read when they change), and OAuth 2.0
// client credentials with the token cached and renewed before it expires. These credentials are
// the gateway's, configured by its operator; nothing of the agent's request — its API key, its
// token, any header it sent — is ever among them.
package upauth

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Secret is where one secret value comes from: exactly one of Env, File or Literal.
type Secret struct {
	// Path names the setting in the configuration ("mcp.upstreams[0].headers.Authorization"),
	// for errors; a value never appears in one.
	Path    string
	Env     string
	File    string
	Literal string
	// Prefix goes before the value ("Bearer ").
	Prefix string
}

// maxSecretBytes bounds a secret file: a token is a few kilobytes at most, and the file is read
// on the request path whenever it changes.
const maxSecretBytes = 64 << 10

// secret is a Secret being served: an environment value read once, or a file read again
// whenever its size or modification time changes.
type secret struct {
	src Secret
	// pem: the value is a PEM document (a private key), not a header value: line breaks are
	// its own.
	pem bool

	mu      sync.Mutex
	val     string
	modTime time.Time
	size    int64
}

// newSecret reads src once, so that a missing or empty value fails the gateway's start.
func newSecret(src Secret) (*secret, error) { return readSecret(&secret{src: src}) }

func readSecret(s *secret) (*secret, error) {
	if _, err := s.get(); err != nil {
		return nil, err
	}
	return s, nil
}

// get returns the current value. A file that became unreadable or invalid fails the request that
// needs it (with the file's path and why, never its content): the upstream would refuse a
// request without its credential anyway, and a failure here names the cause.
func (s *secret) get() (string, error) {
	switch {
	case s.src.Literal != "":
		return s.src.Prefix + s.src.Literal, nil
	case s.src.Env != "":
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.val == "" {
			v := strings.TrimSpace(os.Getenv(s.src.Env))
			if v == "" {
				return "", fmt.Errorf("%s: the environment variable %s is not set", s.src.Path, s.src.Env)
			}
			if err := s.check(v); err != nil {
				return "", err
			}
			s.val = v
		}
		return s.src.Prefix + s.val, nil
	case s.src.File != "":
		return s.file()
	}
	return "", fmt.Errorf("%s: no value source", s.src.Path)
}

func (s *secret) file() (string, error) {
	fi, err := os.Stat(s.src.File)
	if err != nil {
		return "", fmt.Errorf("%s: %w", s.src.Path, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.val != "" && fi.ModTime().Equal(s.modTime) && fi.Size() == s.size {
		return s.src.Prefix + s.val, nil
	}
	if fi.Size() > maxSecretBytes {
		return "", fmt.Errorf("%s: %s is %d bytes, more than a secret's %d", s.src.Path, s.src.File, fi.Size(), maxSecretBytes)
	}
	b, err := os.ReadFile(s.src.File)
	if err != nil {
		return "", fmt.Errorf("%s: %w", s.src.Path, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s: %s is empty", s.src.Path, s.src.File)
	}
	if err := s.check(v); err != nil {
		return "", fmt.Errorf("%w (in %s)", err, s.src.File)
	}
	s.val, s.modTime, s.size = v, fi.ModTime(), fi.Size()
	return s.src.Prefix + v, nil
}

// errBadValue: a value that cannot be sent in a header.
var errBadValue = errors.New("the value holds a line break or another control character")

func (s *secret) check(v string) error {
	if !s.pem && !httpguts.ValidHeaderFieldValue(v) {
		return fmt.Errorf("%s: %w", s.src.Path, errBadValue)
	}
	return nil
}
