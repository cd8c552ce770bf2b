package policy

import (
	"os"
	"strings"
	"testing"
)

func sessionSet(t *testing.T) *Set {
	t.Helper()
	src, err := os.ReadFile("../../examples/policies/session-exfiltration.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse("session-exfiltration.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSessionRulePack(t *testing.T) {
	s := sessionSet(t)
	req := func(tool string, labels ...string) *Request {
		return &Request{Agent: Agent{ID: "research-assistant"}, Tool: tool, Params: map[string]any{},
			Session: &Session{ID: "s1", Labels: labels, Sources: []string{"fetch_url dec_1", "read_file dec_2"}}}
	}
	for _, c := range []struct {
		name string
		r    *Request
		want Action
	}{
		{"sink, clean session", req("send_email"), Allow},
		{"sink, untrusted only", req("send_email", "untrusted"), Allow},
		{"sink, private only", req("send_email", "private"), Allow},
		{"sink, untrusted and private", req("send_email", "untrusted", "private"), Constrain},
		{"other sink, both, custom order", req("http_post", "private", "untrusted"), Constrain},
		{"not a sink, both", req("read_file", "untrusted", "private"), Allow},
		{"sink, restricted seen", req("http_post", "classification:restricted"), Deny},
		{"sink, confidential seen", req("http_post", "classification:confidential"), Allow},
		{"sink, unknown level counts as the highest", req("http_post", "classification:top-secret"), Deny},
		{"no session", &Request{Agent: Agent{ID: "research-assistant"}, Tool: "send_email", Params: map[string]any{}}, Allow},
	} {
		if got := s.Evaluate(c.r).Action; got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
		if got := s.Decide(c.r).Decision.Action; got != c.want {
			t.Errorf("%s: Decide %s, want %s", c.name, got, c.want)
		}
	}
	e := s.Explain(req("send_email", "untrusted", "private"))
	var detail string
	for _, r := range e.Rules {
		for _, c := range r.Conditions {
			if c.Kind == "session" && r.Applies {
				detail = c.Detail
			}
		}
	}
	for _, want := range []string{"untrusted (from fetch_url dec_1)", "private (from read_file dec_2)"} {
		if !strings.Contains(detail, want) {
			t.Errorf("explanation %q does not name %q", detail, want)
		}
	}
	if d, ok := s.Tool("research-assistant", "read_file"); !ok || d.Classification != "confidential" || d.Returns[0] != LabelPrivate {
		t.Errorf("Tool(read_file) = %+v, %v", d, ok)
	}
	if _, ok := s.Tool("research-assistant", "nope"); ok {
		t.Error("undeclared tool declared")
	}
}

// A session condition reads what the agent can influence, so an ALLOW rule using it can only
// tighten: it never loosens the default.
func TestSessionRuleOnlyTightens(t *testing.T) {
	f, err := Parse("p.yaml", []byte(`agent_id: a
default_action: DENY
rules:
  - name: allow_after_untrusted
    tool: x
    action: ALLOW
    conditions:
      - session: {has_seen: [untrusted]}
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(f)
	if err != nil {
		t.Fatal(err)
	}
	r := &Request{Agent: Agent{ID: "a"}, Tool: "x", Session: &Session{Labels: []string{"untrusted"}}}
	if got := s.Evaluate(r).Action; got != Deny {
		t.Fatalf("an ALLOW on session labels loosened the decision: %s", got)
	}
}

func TestSessionParseErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"tools: {x: {returns: [secretz]}}", `unknown label "secretz"`},
		{"tools: {x: {sink: outside}}", `unknown sink "outside"`},
		{"tools: {x: {classification: ultra}}", `unknown classification level "ultra"`},
		{"tools: {x: {color: red}}", "color"},
		{"labels: [Customer]", `invalid label "Customer"`},
		{"labels: [untrusted]", "built in"},
		{"labels: [a, a]", "listed twice"},
		{"rules: [{name: r, tool: x, action: DENY, conditions: [{session: {has_seen: [nope]}}]}]", `unknown label "nope"`},
		{"rules: [{name: r, tool: x, action: DENY, conditions: [{session: {has_seen: []}}]}]", "non-empty"},
		{"rules: [{name: r, tool: x, action: DENY, conditions: [{session: {max_classification_seen: ultra}}]}]", `unknown classification level "ultra"`},
		{"rules: [{name: r, tool: x, action: DENY, conditions: [{session: {}}]}]", "needs has_seen"},
		{"rules: [{name: r, tool: x, action: DENY, conditions: [{tool_sink: outside}]}]", `unknown sink`},
	} {
		_, err := Parse("p.yaml", []byte("agent_id: a\n"+c.src+"\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.src, err, c.want)
		}
	}
	// A declared custom label is known to tools and conditions alike, whatever the key order.
	_, err := Parse("p.yaml", []byte(`agent_id: a
rules: [{name: r, tool: x, action: DENY, conditions: [{session: {has_seen: [customer_data]}}]}]
tools: {crm: {returns: [customer_data, private]}}
labels: [customer_data]
`))
	if err != nil {
		t.Fatal(err)
	}
}
