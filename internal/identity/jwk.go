package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
)

// verificationKey is one key an issuer may sign with, from a JWKS, a JWK or a PEM file.
type verificationKey struct {
	kid string
	alg string // the JWK's "alg", when it names one: the key is then usable only for it
	key any    // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte (HMAC)
}

// family is the algorithm family a key can verify: "RS" (RS* and PS*), "ES", "EdDSA" or "HS".
func (k verificationKey) family() string {
	switch k.key.(type) {
	case *rsa.PublicKey:
		return "RS"
	case *ecdsa.PublicKey:
		return "ES"
	case ed25519.PublicKey:
		return "EdDSA"
	case []byte:
		return "HS"
	}
	return ""
}

// algFamily maps a JWS alg to the key family that may verify it. This — not just the
// allow-list — is what defeats HS/RS confusion: an RSA public key is never handed to an HMAC
// verifier, whatever the token header says.
func algFamily(alg string) string {
	switch {
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		return "RS"
	case strings.HasPrefix(alg, "ES"):
		return "ES"
	case alg == "EdDSA":
		return "EdDSA"
	case strings.HasPrefix(alg, "HS"):
		return "HS"
	}
	return ""
}

type jwkJSON struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	K   string `json:"k"`
	D   string `json:"d"`
}

const maxKeyDocSize = 1 << 20

// parseKeyDocument reads a JWKS ({"keys": [...]}), a single JWK, or PEM public keys.
// Keys that cannot be used for signatures are skipped; a document with no usable key is an error.
func parseKeyDocument(b []byte, allowSecret bool) ([]verificationKey, error) {
	if len(b) > maxKeyDocSize {
		return nil, fmt.Errorf("key document larger than %d bytes", maxKeyDocSize)
	}
	t := bytes.TrimSpace(b)
	var out []verificationKey
	var skipped []string
	switch {
	case bytes.HasPrefix(t, []byte("-----BEGIN")):
		rest := t
		for {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if blk.Type != "PUBLIC KEY" {
				return nil, fmt.Errorf("PEM block %q: only PUBLIC KEY blocks are accepted", blk.Type)
			}
			k, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("PEM public key: %w", err)
			}
			switch k.(type) {
			case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			default:
				return nil, fmt.Errorf("PEM public key of type %T is not supported", k)
			}
			out = append(out, verificationKey{key: k})
		}
	case bytes.HasPrefix(t, []byte("{")):
		var doc struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(t, &doc); err != nil {
			return nil, fmt.Errorf("key document: %w", err)
		}
		raws := doc.Keys
		if raws == nil {
			raws = []json.RawMessage{t} // a single JWK
		}
		for i, raw := range raws {
			k, err := parseJWK(raw, allowSecret)
			if err != nil {
				skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
				continue
			}
			out = append(out, k)
		}
	default:
		return nil, fmt.Errorf("key document is neither JSON (JWK/JWKS) nor PEM")
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("key document has no usable key (%s)", strings.Join(skipped, "; "))
	}
	return out, nil
}

func b64url(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func parseJWK(raw []byte, allowSecret bool) (verificationKey, error) {
	var j jwkJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return verificationKey{}, err
	}
	if j.Use != "" && j.Use != "sig" {
		return verificationKey{}, fmt.Errorf("use %q is not sig", j.Use)
	}
	if j.D != "" {
		// A private key published in a JWKS is a misconfiguration worth refusing loudly.
		return verificationKey{}, fmt.Errorf("JWK %q contains private key material", j.Kid)
	}
	vk := verificationKey{kid: j.Kid, alg: j.Alg}
	switch j.Kty {
	case "RSA":
		n, err := b64url(j.N)
		if err != nil || len(n) == 0 {
			return vk, fmt.Errorf("RSA n: invalid")
		}
		e, err := b64url(j.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return vk, fmt.Errorf("RSA e: invalid")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < 2048 {
			return vk, fmt.Errorf("RSA key of %d bits is too short (need 2048)", pub.N.BitLen())
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return vk, fmt.Errorf("RSA exponent %d is invalid", pub.E)
		}
		vk.key = pub
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return vk, fmt.Errorf("EC curve %q is not supported", j.Crv)
		}
		x, err1 := b64url(j.X)
		y, err2 := b64url(j.Y)
		size := (curve.Params().BitSize + 7) / 8
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return vk, fmt.Errorf("EC coordinates: invalid")
		}
		// ParseUncompressedPublicKey checks that the point is on the curve.
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return vk, fmt.Errorf("EC point: %w", err)
		}
		vk.key = pub
	case "OKP":
		if j.Crv != "Ed25519" {
			return vk, fmt.Errorf("OKP curve %q is not supported", j.Crv)
		}
		x, err := b64url(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return vk, fmt.Errorf("Ed25519 x: invalid")
		}
		vk.key = ed25519.PublicKey(x)
	case "oct":
		if !allowSecret {
			return vk, fmt.Errorf("symmetric (oct) keys are only accepted from key files")
		}
		k, err := b64url(j.K)
		if err != nil || len(k) < 32 {
			return vk, fmt.Errorf("oct key: need at least 32 bytes")
		}
		vk.key = k
	default:
		return vk, fmt.Errorf("kty %q is not supported", j.Kty)
	}
	if vk.alg != "" && algFamily(vk.alg) != vk.family() {
		return vk, fmt.Errorf("JWK alg %q does not fit kty %q", vk.alg, j.Kty)
	}
	return vk, nil
}
