package console

import (
	"context"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// rigPolicy: allow_read fires, deny_delete never does (and lint calls it pointless under the
// default DENY: PL008), watch_threats is a dry run.
const rigPolicy = `agent_id: agent-a
rules:
  - name: allow_read
    tool: read_file
    action: ALLOW
  - name: deny_delete
    tool: delete_file
    action: DENY
  - name: watch_threats
    tool: ".*"
    action: CONSTRAIN
    dry_run: true
    conditions:
      - threat_score: high
`

func rigPolicies(t *testing.T) *policy.Set {
	t.Helper()
	set, err := policy.LoadSources([]policy.Source{{Name: "agent-a.yaml", Data: []byte(rigPolicy)}})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestPoliciesPageShowsHitsDryRunsAndLint(t *testing.T) {
	r := newRig(t, false)
	now := time.Now()
	ctx := context.Background()
	for i, rec := range []*ledger.Record{
		{Tool: "read_file", Decision: "allow", Policy: &ledger.Policy{Rule: "allow_read"}, Time: now.Add(-2 * time.Hour), PolicyVersion: "sha256:0123456789abcdef"},
		{Tool: "read_file", Decision: "log", Policy: &ledger.Policy{Rule: "allow_read"}, Time: now.Add(-time.Hour),
			Reason: `dry run: rule "watch_threats" would have decided CONSTRAIN`},
		// Another agent's rule of the same name is not this rule.
		{Tool: "delete_file", Decision: "deny", Policy: &ledger.Policy{Rule: "deny_delete"}, Time: now.Add(-time.Hour), Agent: &ledger.Principal{ID: "agent-b"}},
	} {
		rec.Kind, rec.DecisionID = ledger.KindDecision, "dec_"+string(rune('a'+i))
		if rec.Agent == nil {
			rec.Agent = &ledger.Principal{ID: "agent-a"}
		}
		if _, err := r.led.Append(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	code, body, _ := r.get(r.signIn(keyAdmin), "/console/policies")
	if code != http.StatusOK {
		t.Fatalf("admin's policies page: %d\n%s", code, body)
	}
	rowOf := func(name string) string {
		i := strings.Index(body, `data-rule="`+name+`"`)
		if i < 0 {
			t.Fatalf("no row for rule %s:\n%s", name, body)
		}
		return body[i : i+strings.Index(body[i:], "</tr>")]
	}
	if row := rowOf("allow_read"); !strings.Contains(row, "<td>2</td>") || strings.Contains(row, "never fired") {
		t.Errorf("allow_read: %s", row)
	}
	if row := rowOf("deny_delete"); !strings.Contains(row, "<td>0</td>") || !strings.Contains(row, "never fired") {
		t.Errorf("deny_delete: %s", row)
	}
	row := rowOf("watch_threats")
	if !strings.Contains(row, ">1</a>") || !strings.Contains(row, "agent-a.yaml:") {
		t.Errorf("watch_threats (dry run): %s", row)
	}
	// Its count links to the calls it would have changed in the audit explorer.
	link := regexp.MustCompile(`href="([^"]*/audit[^"]*)"`).FindStringSubmatch(row)
	if link == nil {
		t.Fatalf("watch_threats links nothing: %s", row)
	}
	if _, found, _ := r.get(r.signIn(keyAdmin), html.UnescapeString(link[1])); strings.Count(found, `<tr class="rec">`) != 1 {
		t.Errorf("the dry run's audit link %s finds:\n%s", link[1], found)
	}
	for _, want := range []string{rigPolicies(t).Version(), "<code>agent-a.yaml</code>", "1 of 2 rules decided no call",
		"<code>PL008</code>"} {
		if !strings.Contains(body, want) {
			t.Errorf("policies page lacks %q", want)
		}
	}
	// The reload history: each version that decided calls, newest first.
	if i := strings.Index(body, `id="versions"`); i < 0 || !strings.Contains(body[i:], "<code>sha256:0123456789abcdef</code>") {
		t.Errorf("the version history lacks the earlier version")
	}
	// Only admins open it.
	for _, key := range []string{keyAuditor, keyAlice} {
		if code, _, _ := r.get(r.signIn(key), "/console/policies"); code != http.StatusForbidden {
			t.Errorf("%s: policies page answered %d", key, code)
		}
	}
}

// A rule's place links to its file as parsed, the rule's own lines marked; only files of the set
// in force can be named, and only admins see them.
func TestPolicySourceMarksTheRule(t *testing.T) {
	r := newRig(t, false)
	admin := r.signIn(keyAdmin)
	_, body, _ := r.get(admin, "/console/policies")
	link := regexp.MustCompile(`href="([^"]*/policies/source[^"]*rule=deny_delete[^"]*)"`).FindStringSubmatch(body)
	if link == nil {
		t.Fatalf("deny_delete's place links no source:\n%s", body)
	}
	code, src, _ := r.get(admin, html.UnescapeString(link[1]))
	if code != http.StatusOK {
		t.Fatalf("source page: %d\n%s", code, src)
	}
	marked := regexp.MustCompile(`<tr id="L(\d+)" class="marked">`).FindAllStringSubmatch(src, -1)
	var lines []string
	for _, m := range marked {
		lines = append(lines, m[1])
	}
	// rigPolicy: deny_delete is lines 6-8 (its name, tool and action).
	if got := strings.Join(lines, ","); got != "6,7,8" {
		t.Errorf("marked lines %s, want 6,7,8:\n%s", got, src)
	}
	if strings.Count(src, `<tr id="L`) != strings.Count(rigPolicy, "\n") {
		t.Errorf("the page does not show every line of the file")
	}
	for _, path := range []string{"/console/policies/source?file=../config.yaml", "/console/policies/source?file=other.yaml", "/console/policies/source"} {
		if code, _, _ := r.get(admin, path); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}
	for _, key := range []string{keyAuditor, keyAlice} {
		if code, _, _ := r.get(r.signIn(key), "/console/policies/source?file=agent-a.yaml"); code != http.StatusForbidden {
			t.Errorf("%s: source page answered %d", key, code)
		}
	}
}

// A candidate in shadow shows with its version and its transition counts, disagreements first;
// without one the page says nothing of shadows.
func TestPoliciesPageShowsShadow(t *testing.T) {
	cand, err := policy.LoadSources([]policy.Source{{Name: "agent-a.yaml", Data: []byte("agent_id: agent-a\nrules: []\n")}})
	if err != nil {
		t.Fatal(err)
	}
	r := newRigWith(t, false, func(o *Options, _ string) {
		o.Policies = func() PolicyState {
			return PolicyState{Set: rigPolicies(t), Shadow: cand, ShadowTransitions: map[string]uint64{"ALLOW→ALLOW": 40, "ALLOW→DENY": 3}}
		}
	})
	code, body, _ := r.get(r.signIn(keyAdmin), "/console/policies")
	if code != http.StatusOK {
		t.Fatalf("policies page: %d\n%s", code, body)
	}
	if !strings.Contains(body, `<code id="shadow-version">`+cand.Version()+`</code>`) {
		t.Errorf("the page lacks the candidate's version %s", cand.Version())
	}
	deny, same := strings.Index(body, "<td>ALLOW→DENY</td><td>3</td>"), strings.Index(body, "<td>ALLOW→ALLOW</td><td>40</td>")
	if deny < 0 || same < 0 || deny > same {
		t.Errorf("transitions missing or agreement listed first (at %d, %d)", deny, same)
	}
	plainRig := newRig(t, false)
	if code, plain, _ := plainRig.get(plainRig.signIn(keyAdmin), "/console/policies"); code != http.StatusOK || strings.Contains(plain, `id="shadow"`) {
		t.Errorf("a page without a candidate (%d) shows a shadow section", code)
	}
}
