package upauth

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Header is one header the gateway sends to an upstream.
type Header struct {
	Name  string
	Value Secret
}

type header struct {
	name string
	val  *secret
}

// Headers is an http.RoundTripper that sets the configured headers on every request to one
// upstream's origin. A request to any other origin (a redirect's target) gets none of them:
// Go's client drops Authorization on a redirect to another host, but a header set here would
// be set again on every hop.
type Headers struct {
	base    http.RoundTripper
	origin  string // scheme://host[:port] of the upstream
	headers []header
}

// NewHeaders reads every header's value once (an unset variable or a missing file fails here,
// naming the setting) and returns the transport that sets them on base's requests to endpoint.
func NewHeaders(endpoint string, hs []Header, base http.RoundTripper) (*Headers, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("upstream URL %q: not an absolute URL", endpoint)
	}
	t := &Headers{base: base, origin: origin(u)}
	for _, h := range hs {
		s, err := newSecret(h.Value)
		if err != nil {
			return nil, err
		}
		t.headers = append(t.headers, header{name: http.CanonicalHeaderKey(h.Name), val: s})
	}
	slices.SortFunc(t.headers, func(a, b header) int { return strings.Compare(a.name, b.name) })
	return t, nil
}

func origin(u *url.URL) string { return u.Scheme + "://" + u.Host }

// RoundTrip sets the headers on a copy of r (a RoundTripper must not change its request) and
// sends it. A value that cannot be read fails the request.
func (t *Headers) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(t.headers) == 0 || origin(r.URL) != t.origin {
		return t.base.RoundTrip(r)
	}
	r2 := r.Clone(r.Context())
	for _, h := range t.headers {
		v, err := h.val.get()
		if err != nil {
			if r.Body != nil {
				_ = r.Body.Close()
			}
			return nil, err
		}
		r2.Header.Set(h.name, v)
	}
	return t.base.RoundTrip(r2)
}
