// Package httpsig signs and verifies HTTP requests with HTTP Message Signatures (RFC 9421)
// using Ed25519, with the body bound through Content-Digest (RFC 9530, sha-256).
//
// It is public so that agents and orchestrators can sign the requests they send to Portcullis,
// and Portcullis's identity package verifies with the very same code: a signature base is built
// in exactly one place. It owns the signature base, the Signature-Input/Signature fields and
// Content-Digest. It must not import anything under internal/ (public packages cannot), and it
// knows nothing of agents, nonce stores or policies: replay protection is the caller's, fed by
// the nonce and created time that Verify returns.
package httpsig

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Algorithm is the only signature algorithm this package speaks (RFC 9421 §3.3.6).
const Algorithm = "ed25519"

// DefaultComponents are the components a Signer covers unless told otherwise: enough to bind
// the method, the target (authority, path and query) and the body.
var DefaultComponents = []string{"@method", "@authority", "@path", "@query", "content-digest"}

// Errors Verify returns; callers branch on them with errors.Is.
var (
	ErrNoSignature       = errors.New("httpsig: request carries no signature")
	ErrMalformed         = errors.New("httpsig: malformed signature fields")
	ErrMissingComponent  = errors.New("httpsig: a required component is not covered or not present")
	ErrMissingParameter  = errors.New("httpsig: a required signature parameter is missing")
	ErrUnsupportedAlg    = errors.New("httpsig: unsupported signature algorithm")
	ErrUnknownKey        = errors.New("httpsig: unknown key id")
	ErrBadSignature      = errors.New("httpsig: signature does not verify")
	ErrStale             = errors.New("httpsig: signature created outside the accepted window")
	ErrExpired           = errors.New("httpsig: signature expired")
	ErrDigestMismatch    = errors.New("httpsig: content-digest does not match the body")
	ErrAmbiguousLabel    = errors.New("httpsig: several signatures and no label chosen")
	ErrLabelNotFound     = errors.New("httpsig: no signature with the requested label")
	errComponentNotFound = errors.New("component not present in the message")
)

// Signer signs outgoing requests with one Ed25519 key.
type Signer struct {
	KeyID string
	Key   ed25519.PrivateKey
	// Label names the signature in the Signature-Input and Signature dictionaries; "sig" if empty.
	Label string
	// Components to cover; DefaultComponents if nil. "content-digest" makes Sign set that header.
	Components []string
	// Now returns the signing time; time.Now if nil.
	Now func() time.Time
	// Nonce returns a fresh nonce; 16 random bytes, base64url, if nil. Verifiers reject reuse.
	Nonce func() (string, error)
	// Tag, when set, is sent as the "tag" parameter (an application-specific profile name).
	Tag string
}

// Sign adds Content-Digest (when covered), Signature-Input and Signature to r. body must be
// exactly the bytes that will be sent (Sign does not read r.Body, so it works for any body source).
func (s *Signer) Sign(r *http.Request, body []byte) error {
	if len(s.Key) != ed25519.PrivateKeySize {
		return fmt.Errorf("httpsig: sign: private key is %d bytes, want %d", len(s.Key), ed25519.PrivateKeySize)
	}
	if s.KeyID == "" {
		return fmt.Errorf("httpsig: sign: empty key id")
	}
	comps := s.Components
	if comps == nil {
		comps = DefaultComponents
	}
	for _, c := range comps {
		if c == "content-digest" {
			r.Header.Set("Content-Digest", ContentDigest(body))
		}
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	nonceFn := s.Nonce
	if nonceFn == nil {
		nonceFn = RandomNonce
	}
	nonce, err := nonceFn()
	if err != nil {
		return fmt.Errorf("httpsig: sign: nonce: %w", err)
	}
	params := []param{
		{"created", now().Unix()},
		{"keyid", s.KeyID},
		{"nonce", nonce},
		{"alg", Algorithm},
	}
	if s.Tag != "" {
		params = append(params, param{"tag", s.Tag})
	}
	base, sigParams, err := signatureBase(r, comps, params)
	if err != nil {
		return fmt.Errorf("httpsig: sign: %w", err)
	}
	sig := ed25519.Sign(s.Key, []byte(base))
	label := s.Label
	if label == "" {
		label = "sig"
	}
	r.Header.Set("Signature-Input", label+"="+sigParams)
	r.Header.Set("Signature", label+"=:"+base64.StdEncoding.EncodeToString(sig)+":")
	return nil
}

// RandomNonce returns 16 bytes from crypto/rand, base64url without padding.
func RandomNonce() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// ContentDigest returns the Content-Digest field value for body: sha-256 (RFC 9530).
func ContentDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// VerifyContentDigest checks a Content-Digest field value against body. A sha-256 member is
// required; a sha-512 member, if present, must match too; other algorithms are ignored (RFC 9530
// lets a recipient ignore algorithms it does not know, but we insist on one we do).
func VerifyContentDigest(field string, body []byte) error {
	members, err := parseDictionary(field)
	if err != nil {
		return fmt.Errorf("%w: content-digest: %v", ErrMalformed, err)
	}
	var have256 bool
	for _, m := range members {
		var want []byte
		switch m.Key {
		case "sha-256":
			s := sha256.Sum256(body)
			want = s[:]
			have256 = true
		case "sha-512":
			s := sha512.Sum512(body)
			want = s[:]
		default:
			continue
		}
		got, ok := m.Item.([]byte)
		if m.IsList || !ok {
			return fmt.Errorf("%w: content-digest %s is not a byte sequence", ErrMalformed, m.Key)
		}
		if subtle.ConstantTimeCompare(got, want) != 1 {
			return fmt.Errorf("%w (%s)", ErrDigestMismatch, m.Key)
		}
	}
	if !have256 {
		return fmt.Errorf("%w: content-digest has no sha-256 member", ErrDigestMismatch)
	}
	return nil
}

// SignatureBase computes the RFC 9421 §2.5 signature base for r over components, with the
// given serialised signature parameters (created, keyid, ...), in order. It is exported for
// interoperability tests; Sign and Verify use it internally.
func SignatureBase(r *http.Request, components []string, params []Param) (string, error) {
	ps := make([]param, len(params))
	for i, p := range params {
		ps[i] = param(p)
	}
	base, _, err := signatureBase(r, components, ps)
	return base, err
}

// Param is one signature parameter (created, expires, keyid, nonce, alg, tag). Value is an
// int64 for created/expires and a string otherwise.
type Param struct {
	Key   string
	Value any
}

func signatureBase(r *http.Request, components []string, params []param) (base, sigParams string, err error) {
	var b strings.Builder
	seen := make(map[string]bool, len(components))
	for _, c := range components {
		if seen[c] {
			return "", "", fmt.Errorf("%w: component %q listed twice", ErrMalformed, c)
		}
		seen[c] = true
		v, err := componentValue(r, c)
		if err != nil {
			return "", "", fmt.Errorf("%w: %q: %v", ErrMissingComponent, c, err)
		}
		b.WriteByte('"')
		b.WriteString(c)
		b.WriteString(`": `)
		b.WriteString(v)
		b.WriteByte('\n')
	}
	var sp strings.Builder
	if err := serializeInnerList(&sp, components, params); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(sp.String())
	return b.String(), sp.String(), nil
}

// authority is the normalised @authority (RFC 9421 §2.2.3, HTTP §4.2.3): the host lower-cased
// and a default port dropped. Both :80 and :443 are dropped whatever the scheme, because behind a
// TLS-terminating proxy the server cannot tell which scheme the client used.
func authority(r *http.Request) string {
	h := r.Host
	if h == "" && r.URL != nil {
		h = r.URL.Host
	}
	h = strings.ToLower(h)
	if !strings.HasSuffix(h, "]") { // not a bare IPv6 literal
		h = strings.TrimSuffix(strings.TrimSuffix(h, ":443"), ":80")
	}
	return h
}

func componentValue(r *http.Request, name string) (string, error) {
	if strings.HasPrefix(name, "@") {
		switch name {
		case "@method":
			return strings.ToUpper(r.Method), nil
		case "@authority":
			a := authority(r)
			if a == "" {
				return "", errComponentNotFound
			}
			return a, nil
		case "@scheme":
			if r.URL != nil && r.URL.Scheme != "" {
				return strings.ToLower(r.URL.Scheme), nil
			}
			if r.TLS != nil {
				return "https", nil
			}
			return "http", nil
		case "@path":
			p := r.URL.EscapedPath()
			if p == "" {
				p = "/"
			}
			return p, nil
		case "@query":
			return "?" + r.URL.RawQuery, nil
		case "@request-target":
			return r.URL.RequestURI(), nil
		case "@target-uri":
			scheme, _ := componentValue(r, "@scheme")
			return scheme + "://" + authority(r) + r.URL.RequestURI(), nil
		}
		return "", fmt.Errorf("unsupported derived component %q", name)
	}
	if name != strings.ToLower(name) || name == "" {
		return "", fmt.Errorf("field name %q is not lower case", name)
	}
	vals := append([]string(nil), r.Header.Values(name)...) // a copy: never edit the caller's header
	if len(vals) == 0 {
		return "", errComponentNotFound
	}
	// RFC 9421 §2.1: trim each field line and join with ", "; obs-fold is not accepted.
	for i, v := range vals {
		if strings.ContainsAny(v, "\r\n") {
			return "", fmt.Errorf("field %q contains a line break", name)
		}
		vals[i] = strings.Trim(v, " \t")
	}
	return strings.Join(vals, ", "), nil
}

// KeyResolver returns the Ed25519 public key for a key id, or an error (wrap ErrUnknownKey).
type KeyResolver func(keyID string) (ed25519.PublicKey, error)

// VerifyOptions say what a verifier insists on.
type VerifyOptions struct {
	// Label selects the signature to verify; empty means the only one present.
	Label string
	// Required components that the signature must cover; DefaultComponents if nil.
	Required []string
	// Now is the verification time (required: pass time.Now() in production).
	Now time.Time
	// MaxAge bounds how old "created" may be; MaxSkew how far in the future (clock skew).
	// Both are required to be positive: an unbounded window would make replay protection unbounded.
	MaxAge, MaxSkew time.Duration
	// RequireNonce rejects signatures without a nonce parameter.
	RequireNonce bool
}

// Result is what a verified signature says.
type Result struct {
	Label      string
	KeyID      string
	Nonce      string
	Tag        string
	Created    time.Time
	Expires    time.Time // zero when absent
	Components []string
}

// Verify checks the signature on r and, when content-digest is covered, the digest of body.
// It returns the verified parameters; the caller enforces nonce uniqueness.
func Verify(r *http.Request, body []byte, opts VerifyOptions, keys KeyResolver) (*Result, error) {
	if opts.MaxAge <= 0 || opts.MaxSkew < 0 || opts.Now.IsZero() {
		return nil, fmt.Errorf("httpsig: verify: options need Now, a positive MaxAge and a non-negative MaxSkew")
	}
	inputField := strings.Join(r.Header.Values("Signature-Input"), ", ")
	sigField := strings.Join(r.Header.Values("Signature"), ", ")
	if inputField == "" && sigField == "" {
		return nil, ErrNoSignature
	}
	inputs, err := parseDictionary(inputField)
	if err != nil {
		return nil, fmt.Errorf("%w: Signature-Input: %v", ErrMalformed, err)
	}
	sigs, err := parseDictionary(sigField)
	if err != nil {
		return nil, fmt.Errorf("%w: Signature: %v", ErrMalformed, err)
	}
	var in *member
	switch {
	case opts.Label != "":
		for i := range inputs {
			if inputs[i].Key == opts.Label {
				in = &inputs[i]
			}
		}
		if in == nil {
			return nil, ErrLabelNotFound
		}
	case len(inputs) == 1:
		in = &inputs[0]
	case len(inputs) == 0:
		return nil, ErrNoSignature
	default:
		return nil, ErrAmbiguousLabel
	}
	if !in.IsList {
		return nil, fmt.Errorf("%w: Signature-Input %s is not an inner list", ErrMalformed, in.Key)
	}
	var sig []byte
	for _, m := range sigs {
		if m.Key == in.Key {
			b, ok := m.Item.([]byte)
			if m.IsList || !ok || len(m.Params) > 0 {
				return nil, fmt.Errorf("%w: Signature %s is not a byte sequence", ErrMalformed, m.Key)
			}
			sig = b
		}
	}
	if sig == nil {
		return nil, fmt.Errorf("%w: no Signature for label %s", ErrMalformed, in.Key)
	}
	res := &Result{Label: in.Key, Components: in.List}
	var hasCreated bool
	for _, p := range in.Params {
		switch p.Key {
		case "created", "expires":
			n, ok := p.Value.(int64)
			if !ok {
				return nil, fmt.Errorf("%w: %s is not an integer", ErrMalformed, p.Key)
			}
			if p.Key == "created" {
				res.Created, hasCreated = time.Unix(n, 0), true
			} else {
				res.Expires = time.Unix(n, 0)
			}
		case "keyid", "nonce", "tag", "alg":
			s, ok := p.Value.(string)
			if !ok {
				return nil, fmt.Errorf("%w: %s is not a string", ErrMalformed, p.Key)
			}
			switch p.Key {
			case "keyid":
				res.KeyID = s
			case "nonce":
				res.Nonce = s
			case "tag":
				res.Tag = s
			case "alg":
				if s != Algorithm {
					return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlg, s)
				}
			}
		default:
			return nil, fmt.Errorf("%w: unknown signature parameter %q", ErrMalformed, p.Key)
		}
	}
	switch {
	case res.KeyID == "":
		return nil, fmt.Errorf("%w: keyid", ErrMissingParameter)
	case !hasCreated:
		return nil, fmt.Errorf("%w: created", ErrMissingParameter)
	case opts.RequireNonce && res.Nonce == "":
		return nil, fmt.Errorf("%w: nonce", ErrMissingParameter)
	}
	required := opts.Required
	if required == nil {
		required = DefaultComponents
	}
	for _, want := range required {
		found := false
		for _, c := range in.List {
			if c == want {
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: %q is not covered", ErrMissingComponent, want)
		}
	}
	pub, err := keys(res.KeyID)
	if err != nil {
		return nil, err
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: key %q is not an Ed25519 public key", ErrUnknownKey, res.KeyID)
	}
	base, _, err := signatureBase(r, in.List, in.Params)
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(pub, []byte(base), sig) {
		return nil, ErrBadSignature
	}
	// The signature is authentic from here on; now judge its freshness and the body.
	if res.Created.Before(opts.Now.Add(-opts.MaxAge)) || res.Created.After(opts.Now.Add(opts.MaxSkew)) {
		return nil, fmt.Errorf("%w: created %s, now %s", ErrStale, res.Created.UTC().Format(time.RFC3339), opts.Now.UTC().Format(time.RFC3339))
	}
	if !res.Expires.IsZero() && !opts.Now.Before(res.Expires) {
		return nil, ErrExpired
	}
	for _, c := range in.List {
		if c == "content-digest" {
			if err := VerifyContentDigest(strings.Join(r.Header.Values("Content-Digest"), ", "), body); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}
