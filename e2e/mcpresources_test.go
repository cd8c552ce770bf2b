package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// resourcesPolicy reads test:// and demo:// resources except server-everything's static
// documents, and gets only the fixture's prompts.
const resourcesPolicy = `agent_id: report-generator-v1
default_action: DENY
rules:
  - name: tools
    tool: ".+__.+"
    action: ALLOW
  - name: reads
    tool: mcp.resources.read
    action: ALLOW
    conditions:
      - parameter: uri
        match: "^(test|demo)://"
  - name: no_static_documents
    tool: mcp.resources.read
    action: DENY
    conditions:
      - parameter: uri
        match: "^demo://resource/static/"
  - name: fixture_prompts
    tool: mcp.prompts.get
    action: ALLOW
    conditions:
      - parameter: server
        match: "^cf$"
`

// TestMCPResourcesAcrossUpstreams: `serve` with three resource servers — server-everything twice
// (every URI of theirs collides) and the conformance fixture. A fresh session reads template
// instances and resource links it never listed; a colliding URI is refused with a message naming
// both upstreams until the agent names one; listings of resources, templates and prompts are
// narrowed by the policy item by item.
func TestMCPResourcesAcrossUpstreams(t *testing.T) {
	everything := everythingServer(t)
	fixture := conformanceFixture(t)
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, resourcesPolicy)
	appendConfig(t, dir, "mcp:\n  upstreams:\n"+
		"    - name: ev\n      command: node\n      args: [\""+everything+"\", \"stdio\"]\n"+
		"    - name: ev2\n      command: node\n      args: [\""+everything+"\", \"stdio\"]\n"+
		"    - name: cf\n      command: \""+fixture+"\"\n")
	d := startServe(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cs := httpClient(t, ctx, d.url, agentKey)

	read := func(uri string, meta mcp.Meta) (*mcp.ReadResourceResult, error) {
		return cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri, Meta: meta})
	}
	// Nothing listed yet: a template instance and a listed URI of the fixture are found.
	if r, err := read("test://template/42/data", nil); err != nil || len(r.Contents) == 0 || !strings.Contains(r.Contents[0].Text, "42") {
		t.Errorf("template instance without a listing: %v %+v", err, r)
	}
	if r, err := read("test://static-text", nil); err != nil || len(r.Contents) == 0 {
		t.Errorf("static resource without a listing: %v %+v", err, r)
	}
	// Both everything servers serve this URI (their template matches it): refused, naming them.
	const dyn = "demo://resource/dynamic/text/2"
	if _, err := read(dyn, nil); err == nil || !strings.Contains(err.Error(), "ev, ev2") || !strings.Contains(err.Error(), "portcullis/upstream") {
		t.Errorf("colliding URI: %v, want a refusal naming ev, ev2 and _meta portcullis/upstream", err)
	}
	if r, err := read(dyn, mcp.Meta{"portcullis/upstream": "ev2"}); err != nil || len(r.Contents) == 0 {
		t.Errorf("colliding URI with the upstream named: %v %+v", err, r)
	}
	if _, err := read(dyn, mcp.Meta{"portcullis/upstream": "nope"}); err == nil {
		t.Error("an unknown upstream in _meta was accepted")
	}
	// A resource link a tool of ev returned is read from ev.
	res := call(t, ctx, cs, "ev__get-resource-links", map[string]any{"count": 4})
	var link string
	for _, c := range res.Content {
		if l, ok := c.(*mcp.ResourceLink); ok && strings.Contains(l.URI, "/text/") {
			link = l.URI
		}
	}
	if link == "" {
		t.Fatalf("no text resource link in %+v", res.Content)
	}
	if r, err := read(link, nil); err != nil || len(r.Contents) == 0 {
		t.Errorf("resource link %s: %v %+v", link, err, r)
	}

	// Refusals are JSON-RPC errors with codes, speaking of the resource or prompt.
	code := func(err error) int64 {
		var je *jsonrpc.Error
		if errors.As(err, &je) {
			return je.Code
		}
		return 0
	}
	if _, err := read("demo://resource/static/document/features.md", mcp.Meta{"portcullis/upstream": "ev"}); code(err) != -32001 || !strings.Contains(err.Error(), "the resource is unavailable") {
		t.Errorf("a denied read: %v (code %d), want -32001 the resource is unavailable", err, code(err))
	}
	if _, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "ev__simple-prompt"}); code(err) != -32001 || !strings.Contains(err.Error(), "the prompt is unavailable") {
		t.Errorf("a denied prompt: %v (code %d), want -32001 the prompt is unavailable", err, code(err))
	}
	if _, err := read("demo://nowhere/x", nil); code(err) != -32002 {
		t.Errorf("a URI no upstream serves: %v (code %d), want -32002", err, code(err))
	}
	if _, err := read(dyn, nil); err != nil && code(err) != -32602 {
		t.Errorf("a colliding URI: code %d, want -32602", code(err))
	}

	// Listings, narrowed item by item.
	lr, err := cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sawFixture bool
	for _, r := range lr.Resources {
		if strings.HasPrefix(r.URI, "demo://resource/static/") {
			t.Errorf("resources/list shows %s, which the policy denies", r.URI)
		}
		sawFixture = sawFixture || r.URI == "test://static-text"
	}
	if !sawFixture {
		t.Errorf("resources/list lacks test://static-text: %d resources", len(lr.Resources))
	}
	lt, err := cs.ListResourceTemplates(ctx, nil)
	if err != nil || len(lt.ResourceTemplates) == 0 {
		t.Errorf("resources/templates/list: %v %+v", err, lt)
	}
	lp, err := cs.ListPrompts(ctx, nil)
	if err != nil || len(lp.Prompts) == 0 {
		t.Fatalf("prompts/list: %v %+v", err, lp)
	}
	for _, p := range lp.Prompts {
		if !strings.HasPrefix(p.Name, "cf__") {
			t.Errorf("prompts/list shows %s, which the policy never lets the agent get", p.Name)
		}
	}
	cs.Close()
	d.stop(t)
	auditVerify(t, dir)
}
