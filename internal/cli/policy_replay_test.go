package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// replayGatewayLedger runs the real gateway over a fresh data directory, makes the calls (each
// body a /v1/decide request) and closes it, returning the data directory and the default policy.
func replayGatewayLedger(t *testing.T, calls []string, want []string) (dir string, pol []byte) {
	t.Helper()
	return gatewayLedger(t, nil, calls, want)
}

// gatewayLedger is replayGatewayLedger with the demo agent's policy replaced by policy (the
// default when nil) before the gateway starts.
func gatewayLedger(t *testing.T, policy []byte, calls []string, want []string) (dir string, pol []byte) {
	t.Helper()
	return editedGatewayLedger(t, policy, nil, calls, want)
}

// editedGatewayLedger is gatewayLedger with edit, when set, run on the data directory and the
// configuration file's path once the policy is written, before the gateway starts.
func editedGatewayLedger(t *testing.T, policy []byte, edit func(dir, cfgPath string), calls []string, want []string) (dir string, pol []byte) {
	t.Helper()
	ctx := context.Background()
	dir = t.TempDir()
	cfgPath, key, err := app.Init(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if policy != nil {
		if err := os.WriteFile(filepath.Join(dir, "policies", app.DemoAgent+".yaml"), policy, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if edit != nil {
		edit(dir, cfgPath)
	}
	url, shut := serveGateway(t, cfgPath)
	for i, body := range calls {
		if d, _ := decideAt(t, url, key, body); d != want[i] {
			t.Fatalf("call %d %s: decision %q, want %s", i, body, d, want[i])
		}
	}
	shut()
	pol, err = os.ReadFile(filepath.Join(dir, "policies", app.DemoAgent+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, pol
}

// serveGateway opens the gateway of the configuration cfgPath and serves its API; shut (also
// run at cleanup) stops both, once.
func serveGateway(t *testing.T, cfgPath string) (url string, shut func()) {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(ctx, cfg, cfgPath, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	var once sync.Once
	shut = func() { once.Do(func() { srv.Close(); a.Close(ctx) }) }
	t.Cleanup(shut)
	return srv.URL, shut
}

// decideAt asks the decision API at url to decide body; it returns the decision and its ID.
func decideAt(t *testing.T, url, key, body string) (decision, id string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/decide", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct {
		Decision   string `json:"decision"`
		DecisionID string `json:"decision_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		t.Fatalf("decide %s: %v", body, err)
	}
	return ans.Decision, ans.DecisionID
}

// candidate writes the default policy with the replacements applied (each must occur).
func candidate(t *testing.T, pol []byte, repl ...string) string {
	t.Helper()
	for i := 0; i < len(repl); i += 2 {
		if !bytes.Contains(pol, []byte(repl[i])) {
			t.Fatalf("policy has no %q", repl[i])
		}
		pol = bytes.Replace(pol, []byte(repl[i]), []byte(repl[i+1]), 1)
	}
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "p.yaml"), pol, 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

func replayOut(t *testing.T, stdout string) replayReport {
	t.Helper()
	var rep replayReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	return rep
}

func transition(rep replayReport, from, to string) *replayTransition {
	for _, tr := range rep.Transitions {
		if tr.From == from && tr.To == to {
			return tr
		}
	}
	return nil
}

func TestPolicyReplayGatewayLedger(t *testing.T) {
	calls := []string{
		`{"tool":"fetch_customer_names","params":{"limit":50}}`,
		`{"tool":"fetch_customer_names","params":{"limit":50}}`,
		`{"tool":"fetch_customer_names","params":{"limit":50}}`,
		`{"tool":"fetch_customer_names","params":{"limit":500}}`,
		`{"tool":"fetch_customer_names","params":{"limit":500}}`,
		`{"tool":"fetch_customer_names","params":{"limit":1001}}`,
		`{"tool":"delete_file","params":{"path":"/tmp/x"}}`,
		`{"tool":"delete_file","params":{"path":"/tmp/y"}}`,
		`{"tool":"fetch_customer_names","params":{"limit":5,"password":"hunter2"}}`,
	}
	want := []string{"ALLOW", "ALLOW", "ALLOW", "ALLOW", "ALLOW", "DENY", "DENY", "DENY", "ALLOW"}
	dir, pol := replayGatewayLedger(t, calls, want)

	// Unchanged policy: nothing changes, nothing is undecidable.
	code, out, errs := run(t, "", "policy", "replay", "--data", dir, "--policy", filepath.Join(dir, "policies"), "--format", "json", "--fail-on", "any-change,undecidable")
	rep := replayOut(t, out)
	if code != exitOK || rep.Replayed != 9 || rep.Unchanged != 9 || rep.Changed != 0 || rep.Undecidable != 0 {
		t.Fatalf("same policy: code %d %+v %s", code, rep, errs)
	}

	// Tightened: a lower limit, and a new DENY on a parameter the ledger redacted.
	tight := candidate(t, pol, "max_value: 1000", "max_value: 100",
		"  - name: \"write_report\"", "  - name: \"no_passwords\"\n    tool: fetch_customer_names\n    action: DENY\n    conditions:\n      - parameter: password\n        match: \".\"\n  - name: \"write_report\"")
	code, out, errs = run(t, "", "policy", "replay", "--data", dir, "--policy", tight, "--format", "json", "--fail-on", "allow-to-deny")
	rep = replayOut(t, out)
	if code != exitFail || !strings.Contains(errs, "allow-to-deny") {
		t.Errorf("tightened --fail-on allow-to-deny: code %d %s", code, errs)
	}
	if rep.Replayed != 9 || rep.Changed != 2 || rep.Undecidable != 1 || rep.Unchanged != 6 || len(rep.Transitions) != 1 {
		t.Fatalf("tightened: %+v", rep)
	}
	tr := transition(rep, "ALLOW", "DENY")
	if tr == nil || tr.Count != 2 || tr.ByTool["fetch_customer_names"] != 2 || tr.ByAgent[app.DemoAgent] != 2 || tr.ByRule["(default_action)"] != 2 || len(tr.Examples) != 2 {
		t.Errorf("ALLOW→DENY = %+v", tr)
	}
	if c := rep.RulesNoLonger[app.DemoAgent+"/read_customer_list"]; c == nil || c.Count != 2 {
		t.Errorf("rules no longer firing = %+v", rep.RulesNoLonger)
	}
	if len(rep.UndecidableWhy) != 1 {
		t.Errorf("undecidable reasons = %+v", rep.UndecidableWhy)
	}
	for why, c := range rep.UndecidableWhy {
		if !strings.Contains(why, "parameter password is redacted") || c.Count != 1 {
			t.Errorf("undecidable: %q %+v", why, c)
		}
	}
	if code, _, _ := run(t, "", "policy", "replay", "--data", dir, "--policy", tight, "--format", "json", "--fail-on", "new-allow"); code != exitOK {
		t.Errorf("tightened --fail-on new-allow: code %d", code)
	}
	if code, _, _ := run(t, "", "policy", "replay", "--data", dir, "--policy", tight, "--format", "json", "--fail-on", "undecidable"); code != exitFail {
		t.Errorf("tightened --fail-on undecidable: code %d", code)
	}

	// Loosened: a higher limit, and deletes under /tmp allowed.
	loose := candidate(t, pol, "max_value: 1000", "max_value: 5000",
		"  - name: \"delete_operations\"\n    tool: delete_file\n    action: DENY\n    conditions: []",
		"  - name: \"delete_tmp\"\n    tool: delete_file\n    action: ALLOW\n    conditions:\n      - parameter: path\n        match: \"^/tmp/\"")
	code, out, errs = run(t, "", "policy", "replay", "--data", dir, "--policy", loose, "--format", "json", "--fail-on", "new-allow,allow-to-deny")
	rep = replayOut(t, out)
	if code != exitFail || !strings.Contains(errs, "new-allow") || strings.Contains(errs, "allow-to-deny") {
		t.Errorf("loosened --fail-on: code %d %s", code, errs)
	}
	tr = transition(rep, "DENY", "ALLOW")
	if rep.Changed != 3 || rep.Undecidable != 0 || len(rep.Transitions) != 1 || tr == nil || tr.Count != 3 ||
		tr.ByTool["delete_file"] != 2 || tr.ByTool["fetch_customer_names"] != 1 || tr.ByRule["delete_tmp"] != 2 || tr.ByRule["read_customer_list"] != 1 {
		t.Fatalf("loosened: %+v %+v", rep, tr)
	}
	if c := rep.RulesNewlyFiring[app.DemoAgent+"/delete_tmp"]; c == nil || c.Count != 2 {
		t.Errorf("newly firing = %+v", rep.RulesNewlyFiring)
	}
	if c := rep.RulesNoLonger[app.DemoAgent+"/delete_operations"]; c == nil || c.Count != 2 {
		t.Errorf("no longer firing = %+v", rep.RulesNoLonger)
	}

	// A condition on the agent's roles, which records hold: the demo agent has reporting, so the
	// call over the limit is now allowed and the rest are unchanged.
	roles := candidate(t, pol, "      - parameter: limit\n        max_value: 1000", "      - agent_role: reporting")
	code, out, _ = run(t, "", "policy", "replay", "--data", dir, "--policy", roles, "--format", "json", "--fail-on", "undecidable")
	rep = replayOut(t, out)
	if tr := transition(rep, "DENY", "ALLOW"); code != exitOK || rep.Undecidable != 0 || rep.Unchanged != 8 || rep.Changed != 1 || tr == nil || tr.ByRule["read_customer_list"] != 1 {
		t.Errorf("agent_role: code %d %+v", code, rep)
	}

	// Filters: one tool only; the table names the transition.
	code, out, _ = run(t, "", "policy", "replay", "--data", dir, "--policy", loose, "--tool", "delete_file", "--format", "table")
	if code != exitOK || !strings.Contains(out, "2 decisions replayed") || !strings.Contains(out, "DENY→ALLOW  2") {
		t.Errorf("--tool table: %d %s", code, out)
	}
	code, out, _ = run(t, "", "policy", "replay", "--data", dir, "--policy", loose, "--until", "2000-01-01T00:00:00Z", "--format", "json")
	if rep := replayOut(t, out); code != exitOK || rep.Replayed != 0 {
		t.Errorf("--until in the past: %d %+v", code, rep)
	}
	// Bad flags are usage errors, not a pass.
	for _, args := range [][]string{{"--fail-on", "allow-to-maybe"}, {"--since", "yesterday"}, {}} {
		a := append([]string{"policy", "replay", "--data", dir}, args...)
		if len(args) > 0 {
			a = append(a, "--policy", loose)
		}
		if code, _, _ := run(t, "", a...); code != exitUsage {
			t.Errorf("%v: code %d, want %d", args, code, exitUsage)
		}
	}
}

func TestRedactedPaths(t *testing.T) {
	got := redactedPaths([]string{"$.password", "$.a.b[3].token", `$["odd key"].x`, "$", "$[0]"})
	want := []string{"password", "a.b.token", "odd key.x", "", ""}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A decision a session rule made is re-decided under the labels the record holds: the session
// pack's hold on a sink after untrusted and private content replays unchanged, and the same call
// in a clean session stays allowed.
func TestPolicyReplaySessionLabels(t *testing.T) {
	set, err := policy.Load("../../examples/policies/session-exfiltration.yaml")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	rec := func(decision, rule string, labels ...string) *ledger.Record {
		r := &ledger.Record{Kind: ledger.KindDecision, DecisionID: "dec_" + rule, Time: at, Agent: &ledger.Principal{ID: "research-assistant", Verified: true},
			Tool: "send_email", Decision: decision, Policy: &ledger.Policy{Rule: rule}}
		if labels != nil {
			r.Session = &ledger.Session{ID: "s1", Labels: labels}
		}
		return r
	}
	rp := newReplayer(set)
	rp.replay(rec("constrain", "session_untrusted_and_private_to_sink", "untrusted", "private"))
	rp.replay(rec("allow", "everyday_tools", "untrusted"))
	rp.replay(rec("allow", "everyday_tools"))
	if rep := rp.rep; rep.Replayed != 3 || rep.Unchanged != 3 || rep.Changed != 0 || rep.Undecidable != 0 {
		t.Fatalf("same policy over session decisions: %+v (transitions %+v)", rep, rep.Transitions)
	}
}

// inputsGatewayLedger runs the real gateway, its demo agent trusted to assert its user and its
// call to fetch_customer_names counted over an hour (a rule that never fires), over the calls.
func inputsGatewayLedger(t *testing.T, calls []string, want []string) (dir string, pol []byte) {
	t.Helper()
	replace := func(path, old, new string) {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.Contains(b, []byte(old)) {
			t.Fatalf("%s: no %q (%v)", path, old, err)
		}
		if err := os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(new), 1), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return editedGatewayLedger(t, nil, func(dir, cfgPath string) {
		replace(cfgPath, "      roles: [reporting]\n", "      roles: [reporting]\n      trust_asserted_user: true\n")
		replace(filepath.Join(dir, "policies", app.DemoAgent+".yaml"), "  - name: \"read_customer_list\"",
			"  - name: \"bulk_reads\"\n    tool: fetch_customer_names\n    action: DENY\n    conditions:\n      - time_context:\n          call_count_exceeds:\n            window_minutes: 60\n            threshold: 1000\n  - name: \"read_customer_list\"")
	}, calls, want)
}

// Replay decides from what a version 2 record holds of the evaluation's inputs: the agent's
// roles, the invoking user's attributes, the behaviour counts at decision time; a condition on
// a user attribute the ledger redacted is undecidable, never guessed. Before records held them,
// each of these was undecidable.
func TestPolicyReplayRecordedInputs(t *testing.T) {
	user := func(region string) string {
		return `,"user":{"id":"alice","permissions":["crm_read"],"attributes":{"region":["` + region + `"],"session":["s-1"]}}`
	}
	calls := []string{
		`{"tool":"fetch_customer_names","params":{"limit":5,"region":"eu"}` + user("eu") + `}`,
		`{"tool":"fetch_customer_names","params":{"limit":5,"region":"us"}` + user("eu") + `}`,
		`{"tool":"fetch_customer_names","params":{"limit":5,"region":"eu"}` + user("eu") + `}`,
		`{"tool":"fetch_customer_names","params":{"limit":5,"region":"eu"}` + user("eu") + `}`,
		`{"tool":"delete_file","params":{"path":"/tmp/x"}}`,
	}
	want := []string{"ALLOW", "ALLOW", "ALLOW", "ALLOW", "DENY"}
	dir, pol := inputsGatewayLedger(t, calls, want)
	replay := func(cand string) replayReport {
		t.Helper()
		_, out, errs := run(t, "", "policy", "replay", "--data", dir, "--policy", cand, "--format", "json")
		if out == "" {
			t.Fatalf("no report: %s", errs)
		}
		return replayOut(t, out)
	}

	// The records hold the inputs, the user attribute named like a credential redacted.
	var seen int
	st, err := sqlite.OpenLedger(filepath.Join(dir, LedgerDBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_ = st.Scan(context.Background(), 0, func(e ledger.Entry) error {
		r, err := ledger.ParseRecord(e.Data)
		if err != nil || r.Kind != ledger.KindDecision || r.Tool != "fetch_customer_names" {
			return err
		}
		seen++
		in := r.Inputs
		if r.V != 2 || in == nil || !slices.Equal(in.Roles, []string{"reporting"}) || in.UserAttributes["region"][0] != "eu" ||
			!slices.Equal(in.RedactedAttributes, []string{"session"}) || in.UserAttributes["session"][0] == "s-1" ||
			in.Calls["60"] != seen-1 || in.Baseline != ledger.BaselineLearning {
			t.Errorf("decision %d: v%d inputs %+v", seen, r.V, in)
		}
		return nil
	})
	if seen != 4 {
		t.Fatalf("%d decisions to fetch_customer_names, want 4", seen)
	}

	// A role the agent has: unchanged; one it lacks: every call the rule covered now denied.
	has := candidate(t, pol, "      - parameter: limit\n        max_value: 1000", "      - agent_role: reporting\n        has_permission: sales_read")
	if rep := replay(has); rep.Undecidable != 0 || rep.Changed != 0 || rep.Unchanged != 5 {
		t.Errorf("agent_role held: %+v", rep)
	}
	lacks := candidate(t, pol, "      - parameter: limit\n        max_value: 1000", "      - agent_role: admin")
	if rep := replay(lacks); rep.Undecidable != 0 || rep.Changed != 4 || transition(rep, "ALLOW", "DENY") == nil {
		t.Errorf("agent_role lacked: %+v", rep)
	}

	// The user's region must match the call's: the one call outside it is denied.
	region := candidate(t, pol, "      - parameter: limit\n        max_value: 1000", "      - invoking_user_attribute: region\n        matches_parameter: region")
	rep := replay(region)
	if tr := transition(rep, "ALLOW", "DENY"); rep.Undecidable != 0 || rep.Changed != 1 || tr == nil || tr.Count != 1 {
		t.Errorf("invoking_user_attribute region: %+v", rep)
	}

	// A tighter rate: the third and fourth calls in the hour exceed 2, as counted when they ran.
	rate := candidate(t, pol, "            threshold: 1000", "            threshold: 2")
	rep = replay(rate)
	if tr := transition(rep, "ALLOW", "DENY"); rep.Undecidable != 0 || rep.Changed != 2 || tr == nil || tr.ByRule["bulk_reads"] != 2 {
		t.Errorf("call_count_exceeds 2: %+v", rep)
	}
	// A window the gateway did not count cannot be decided.
	other := candidate(t, pol, "            window_minutes: 60", "            window_minutes: 5")
	if rep := replay(other); rep.Undecidable != 4 {
		t.Errorf("an uncounted window: %+v", rep)
	}

	// A condition on the redacted attribute: undecidable, with the reason.
	redacted := candidate(t, pol, "      - parameter: limit\n        max_value: 1000", "      - invoking_user_attribute: session\n        matches_parameter: region")
	rep = replay(redacted)
	if rep.Undecidable != 4 || rep.Changed != 0 || rep.UndecidableWhy["invoking_user_attribute session is redacted (rule read_customer_list)"] == nil {
		t.Errorf("redacted attribute: %+v %v", rep, rep.UndecidableWhy)
	}
}

// A version 1 record (written before records held the evaluation's inputs) still replays: a
// condition on what it does not hold is undecidable, the rest is decided.
func TestPolicyReplayVersion1Record(t *testing.T) {
	set, err := policy.LoadSources([]policy.Source{{Name: "p.yaml", Data: []byte("agent_id: a\ndefault_action: DENY\nrules:\n" +
		"  - name: by_role\n    tool: t_role\n    action: ALLOW\n    conditions:\n      - agent_role: ops\n" +
		"  - name: by_param\n    tool: t_param\n    action: ALLOW\n    conditions:\n      - parameter: n\n        max_value: 3\n")}})
	if err != nil {
		t.Fatal(err)
	}
	rp := newReplayer(set)
	for _, data := range []string{
		`{"v":1,"seq":0,"prev":"","time":"2026-01-01T00:00:00Z","kind":"decision","decision_id":"d1","agent":{"id":"a","verified":true},"tool":"t_role","decision":"allow","policy":{"rule":"by_role"},"shadow":{"version":"x","decision":"deny"}}`,
		`{"v":1,"seq":1,"prev":"","time":"2026-01-01T00:00:00Z","kind":"decision","decision_id":"d2","agent":{"id":"a","verified":true},"tool":"t_param","params":{"n":9},"decision":"allow","policy":{"rule":"by_param"}}`,
	} {
		r, err := parseReplayRecord([]byte(data))
		if err != nil {
			t.Fatal(err)
		}
		rp.replay(r)
	}
	if rep := rp.rep; rep.Replayed != 2 || rep.Undecidable != 1 || rep.Changed != 1 || rep.UndecidableWhy["agent_role: the record holds no agent roles (rule by_role)"] == nil {
		t.Errorf("version 1 records: %+v %v", rep, rep.UndecidableWhy)
	}
}

// The parallel replay counts in ledger order: its report is the one a single pass gives, the
// examples included, whatever worker decided which batch; a record that is not one stops it
// with that record's seq, after the records before it were counted.
func TestReplayLedgerInOrder(t *testing.T) {
	set, err := policy.LoadSources([]policy.Source{{Name: "p.yaml", Data: []byte("agent_id: a\ndefault_action: DENY\nrules:\n" +
		"  - name: small\n    tool: t\n    action: ALLOW\n    conditions:\n      - parameter: n\n        max_value: 3\n")}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	var recs []*ledger.Record
	st := memory.New()
	ctx := context.Background()
	for i := range n {
		r := &ledger.Record{Seq: uint64(i), Kind: ledger.KindDecision, DecisionID: fmt.Sprintf("d%04d", i), Time: time.Unix(int64(i), 0),
			Agent: &ledger.Principal{ID: "a"}, Tool: "t", Params: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i%7)),
			Decision: []string{"allow", "deny"}[i%2], Policy: &ledger.Policy{Rule: "small"}}
		data, err := ledger.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Commit(ctx, []ledger.Entry{{Seq: uint64(i), Data: data}}, nil); err != nil {
			t.Fatal(err)
		}
		back, _ := ledger.ParseRecord(data)
		recs = append(recs, back)
	}
	one := newReplayer(set)
	for _, r := range recs {
		one.replay(r)
	}
	par := newReplayer(set)
	scanned, err := replayLedger(ctx, st, decisionFilter{}, par)
	if err != nil || scanned != n {
		t.Fatalf("replayLedger: %d scanned, %v", scanned, err)
	}
	a, _ := json.Marshal(one.rep)
	b, _ := json.Marshal(par.rep)
	if !bytes.Equal(a, b) {
		t.Errorf("parallel report differs from one pass:\n%s\n%s", b, a)
	}
	if one.rep.Changed == 0 || len(one.rep.Transitions) != 2 {
		t.Fatalf("the ledger changes nothing: %+v", one.rep)
	}

	// A malformed record in the middle.
	bad := memory.New()
	err = st.Scan(ctx, 0, func(e ledger.Entry) error {
		if e.Seq == 1700 {
			e.Data = []byte(`{"v":2,"seq":1700,"prev":"","kind":"decision","agent":{"id":}}`)
		}
		return bad.Commit(ctx, []ledger.Entry{{Seq: e.Seq, Data: bytes.Clone(e.Data)}}, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replayLedger(ctx, bad, decisionFilter{}, newReplayer(set)); err == nil || !strings.Contains(err.Error(), "record 1700") {
		t.Errorf("a malformed record: %v", err)
	}
}

// With recounted call history (policy suggest's), a version 2 record's hour baseline still
// answers unusual_hour: the recount holds calls only, and its "no baseline learned" would turn a
// call the gateway saw at an unusual hour into a usual one.
func TestPolicyReplayRecountKeepsRecordedBaseline(t *testing.T) {
	set, err := policy.LoadSources([]policy.Source{{Name: "p.yaml", Data: []byte("agent_id: a\ndefault_action: ALLOW\nrules:\n" +
		"  - name: odd_hour\n    tool: t\n    action: DENY\n    conditions:\n      - time_context:\n          unusual_hour: true\n")}})
	if err != nil {
		t.Fatal(err)
	}
	rp := newReplayer(set)
	rp.history = func(*ledger.Record) policy.History { return &policy.CallList{} }
	// Wednesday 10:00 UTC, inside business hours: only the learned baseline calls it unusual.
	r, err := parseReplayRecord([]byte(`{"v":2,"seq":0,"prev":"","time":"2026-01-07T10:00:00Z","kind":"decision","decision_id":"d1","agent":{"id":"a","verified":true},"tool":"t","decision":"deny","policy":{"rule":"odd_hour"},"inputs":{"baseline":"unusual"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var o replayOutcome
	rp.decide(r, &o)
	if o.undecidable != "" || o.to != "DENY" {
		t.Errorf("replayed with recounted calls: %q (undecidable %q), want DENY from the recorded baseline", o.to, o.undecidable)
	}
}
