package mcp

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"
)

// MetaUpstream is the _meta key with which an agent names the upstream of a resources/read,
// resources/subscribe or resource completion whose URI more than one upstream serves.
const MetaUpstream = "portcullis/upstream"

// ErrAmbiguousResource: more than one upstream serves the URI and the request did not say which.
var ErrAmbiguousResource = errors.New("mcp: resource served by more than one upstream")

const (
	// maxLinks bounds the URIs remembered from resource links in tool results.
	maxLinks = 4096
	// maxTemplateLen bounds one resource template an upstream lists.
	maxTemplateLen = 2048
	// indexMinAge is how often, at most, a URI that no upstream is known to serve relists them.
	indexMinAge = time.Second
	// maxSubscriptions bounds the resource URIs the gateway holds subscribed on one upstream.
	maxSubscriptions = 1024
)

// resIndex is who serves what, from one listing of every upstream: rebuilt whole (never grown),
// so it holds at most maxListed resources and templates per upstream.
type resIndex struct {
	built time.Time
	exact map[string][]*upstream // resource URI → upstreams that list it
	tmpl  map[string][]*upstream // template (as written) → upstreams that list it
	match []tmplMatch
}

type tmplMatch struct {
	re *regexp.Regexp
	u  *upstream
}

// resources routes resource URIs to upstreams.
type resources struct {
	build sync.Mutex // one rebuild at a time
	mu    sync.Mutex
	idx   *resIndex
	links boundedMap // URI a tool's result linked → the upstream that returned it
}

// boundedMap is a map of at most maxLinks entries; the oldest insertion goes first.
type boundedMap struct {
	m     map[string]*upstream
	order []string
}

func (b *boundedMap) put(k string, u *upstream) {
	if b.m == nil {
		b.m = map[string]*upstream{}
	}
	if _, ok := b.m[k]; !ok {
		if len(b.order) >= maxLinks {
			delete(b.m, b.order[0])
			b.order = b.order[1:]
		}
		b.order = append(b.order, k)
	}
	b.m[k] = u
}

// noteLinks remembers the resource URIs a tool of u returned (resource links and embedded
// resources), so the agent can read them without a listing that shows them.
func (g *Gateway) noteLinks(u *upstream, res *sdk.CallToolResult) {
	if res == nil {
		return
	}
	g.res.mu.Lock()
	defer g.res.mu.Unlock()
	for _, c := range res.Content {
		switch c := c.(type) {
		case *sdk.ResourceLink:
			g.res.links.put(c.URI, u)
		case *sdk.EmbeddedResource:
			if c.Resource != nil {
				g.res.links.put(c.Resource.URI, u)
			}
		}
	}
}

// rebuild lists every upstream's resources and templates into a fresh index.
func (g *Gateway) rebuild(ctx context.Context) *resIndex {
	idx := &resIndex{built: time.Now(), exact: map[string][]*upstream{}, tmpl: map[string][]*upstream{}}
	for _, u := range g.ups {
		if !hasResources(u) {
			continue
		}
		cs, err := g.sessionNow(ctx, u)
		if err != nil {
			continue
		}
		eachListed(g, u, cs.Resources(ctx, nil), func(r *sdk.Resource) {
			idx.exact[r.URI] = appendOnce(idx.exact[r.URI], u)
		})
		eachListed(g, u, cs.ResourceTemplates(ctx, nil), func(t *sdk.ResourceTemplate) {
			if len(t.URITemplate) > maxTemplateLen {
				return
			}
			idx.tmpl[t.URITemplate] = appendOnce(idx.tmpl[t.URITemplate], u)
			if tp, err := uritemplate.New(t.URITemplate); err == nil {
				idx.match = append(idx.match, tmplMatch{re: tp.Regexp(), u: u})
			}
		})
	}
	return idx
}

func appendOnce(us []*upstream, u *upstream) []*upstream {
	if slices.Contains(us, u) {
		return us
	}
	return append(us, u)
}

// resolveResource finds the upstream that serves uri (template: uri is a resource template, as
// a completion names it): the one named by _meta's MetaUpstream; the only upstream with
// resources; the upstreams that list uri exactly; else those whose tool returned a link to it;
// else those with a template matching it. What is not known is looked up again by listing
// every upstream (at most once a second). More than one: ErrAmbiguousResource, naming them.
func (g *Gateway) resolveResource(ctx context.Context, uri string, template bool, meta sdk.Meta) (*upstream, error) {
	if name, ok := meta[MetaUpstream].(string); ok {
		u, known := g.byKey[name]
		if !known || !hasResources(u) {
			return nil, fmt.Errorf("%w %q (%s)", ErrNoUpstream, name, MetaUpstream)
		}
		return u, nil
	}
	var with []*upstream
	for _, u := range g.ups {
		if hasResources(u) || u.initResult() == nil {
			with = append(with, u)
		}
	}
	if len(g.ups) == 1 {
		return g.ups[0], nil
	}
	if len(with) == 1 {
		return with[0], nil
	}
	g.res.mu.Lock()
	idx := g.res.idx
	g.res.mu.Unlock()
	found := g.candidates(idx, uri, template)
	if len(found) == 0 && (idx == nil || time.Since(idx.built) >= indexMinAge) {
		g.res.build.Lock()
		g.res.mu.Lock()
		cur := g.res.idx
		g.res.mu.Unlock()
		if cur == idx || cur == nil || time.Since(cur.built) >= indexMinAge {
			cur = g.rebuild(ctx)
			g.res.mu.Lock()
			g.res.idx = cur
			g.res.mu.Unlock()
		}
		g.res.build.Unlock()
		found = g.candidates(cur, uri, template)
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w for resource %q", ErrNoUpstream, uri)
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, u := range found {
		names[i] = u.name
	}
	return nil, fmt.Errorf("%w: %q is served by %s; name one in _meta %q", ErrAmbiguousResource, uri, strings.Join(names, ", "), MetaUpstream)
}

func (g *Gateway) candidates(idx *resIndex, uri string, template bool) []*upstream {
	if idx != nil {
		if template {
			return idx.tmpl[uri]
		}
		if us := idx.exact[uri]; len(us) > 0 {
			return us
		}
	}
	g.res.mu.Lock()
	u := g.res.links.m[uri]
	g.res.mu.Unlock()
	if u != nil {
		return []*upstream{u}
	}
	if idx == nil || template {
		return nil
	}
	var out []*upstream
	for _, m := range idx.match {
		if m.re.MatchString(uri) {
			out = appendOnce(out, m.u)
		}
	}
	return out
}

// resourceFor resolves uri for a request: its upstream and that upstream's name. A URI no
// upstream is known to serve yields (nil, "", nil): the request is still decided and recorded,
// then refused (governed); an ambiguous one is refused at once, with its error.
func (g *Gateway) resourceFor(ctx context.Context, uri string, template bool, meta sdk.Meta) (*upstream, string, error) {
	u, err := g.resolveResource(ctx, uri, template, meta)
	switch {
	case err == nil:
		return u, u.name, nil
	case errors.Is(err, ErrAmbiguousResource):
		return nil, "", &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error()}
	case meta[MetaUpstream] != nil:
		return nil, "", &jsonrpc.Error{Code: CodeNotFound, Message: err.Error()}
	}
	return nil, "", nil
}
