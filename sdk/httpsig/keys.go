package httpsig

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
)

// GenerateKey makes a new Ed25519 signing key. It returns the private key, its text form for
// the agent's secret store (ParsePrivateKey reads it back) and the public key in base64 — the
// value of `public_key` in the agent's signing_keys configuration.
func GenerateKey() (priv ed25519.PrivateKey, privText, pubBase64 string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", "", fmt.Errorf("httpsig: generate key: %w", err)
	}
	return priv, base64.StdEncoding.EncodeToString(priv.Seed()), base64.StdEncoding.EncodeToString(pub), nil
}

// ParsePrivateKey reads an Ed25519 private key given as base64 of its 32-byte seed (what
// GenerateKey returns) or as a PEM "PRIVATE KEY" (PKCS #8) block.
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		b, _ := pem.Decode([]byte(s))
		if b == nil || b.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("httpsig: not a PEM PRIVATE KEY block")
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("httpsig: parse private key: %w", err)
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("httpsig: private key is %T, want Ed25519", k)
		}
		return priv, nil
	}
	seed, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("httpsig: private key is neither base64 nor PEM: %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("httpsig: private key seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
