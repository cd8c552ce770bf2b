package upauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// methodPrivateKeyJWT: the client authenticates to the token endpoint with a JWT it signs
// (RFC 7523 §2.2, OpenID Connect's private_key_jwt) instead of a shared secret.
const methodPrivateKeyJWT = "private_key_jwt"

// assertionLifetime bounds a client assertion: it is used once, right away.
const assertionLifetime = time.Minute

// assertion is a fresh client assertion signed with the PEM private key: issuer and subject the
// client ID, audience the authorization server (its issuer when discovered, else the token
// endpoint), a unique jti and a one-minute lifetime. Called with h.mu held.
func (h *ClientCredentials) assertion(pemKey string) (string, error) {
	key, method, err := signingKey(pemKey)
	if err != nil {
		return "", fmt.Errorf("%s: %w", h.cfg.Secret.Path, err)
	}
	aud := h.tokenURL
	if h.issuer != "" {
		aud = h.issuer
	} else if h.cfg.Issuer != "" {
		aud = h.cfg.Issuer
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	now := h.now()
	claims := jwt.RegisteredClaims{Issuer: h.cfg.ClientID, Subject: h.cfg.ClientID, Audience: jwt.ClaimStrings{aud},
		ID: hex.EncodeToString(jti[:]), IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(assertionLifetime))}
	return jwt.NewWithClaims(method, claims).SignedString(key)
}

// signingKey parses a PEM private key (PKCS #8, SEC 1 EC or PKCS #1 RSA) and picks its JWS
// algorithm: ES256/ES384/ES512 by curve, RS256, or EdDSA.
func signingKey(pemKey string) (crypto.Signer, jwt.SigningMethod, error) {
	block, _ := pem.Decode([]byte(pemKey))
	if block == nil {
		return nil, nil, errors.New("not a PEM private key")
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("private key: %w", err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return k, jwt.SigningMethodES256, nil
		case elliptic.P384():
			return k, jwt.SigningMethodES384, nil
		case elliptic.P521():
			return k, jwt.SigningMethodES512, nil
		}
		return nil, nil, errors.New("private key: unsupported elliptic curve")
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, nil, errors.New("private key: RSA keys under 2048 bits are refused")
		}
		return k, jwt.SigningMethodRS256, nil
	case ed25519.PrivateKey:
		return k, jwt.SigningMethodEdDSA, nil
	}
	return nil, nil, fmt.Errorf("private key: unsupported type %T", key)
}
