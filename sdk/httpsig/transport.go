package httpsig

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// Transport is an http.RoundTripper that signs every request it sends with Signer: give it to an
// http.Client and each request is signed with a fresh nonce, after its body is final.
type Transport struct {
	Signer *Signer
	// Base sends the signed request; http.DefaultTransport if nil.
	Base http.RoundTripper
}

// RoundTrip reads the body, signs a clone of req and sends it. The caller's request is not
// modified (as the RoundTripper contract requires).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("httpsig: read request body: %w", err)
		}
		body = b
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	if err := t.Signer.Sign(out, body); err != nil {
		return nil, err
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(out)
}
