package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// suggestCall is one call of the ground truth: what the agent sent and whether it was allowed.
type suggestCall struct {
	tool   string
	params string
	at     time.Time
	dec    string
}

// suggestDecide decides one request under the suggested policy.
func suggestDecide(t *testing.T, set *policy.Set, agent, tool, params string, at time.Time, hist policy.History) policy.Action {
	t.Helper()
	req := policy.Request{Agent: policy.Agent{ID: agent}, Tool: tool, Time: at, History: hist}
	if params != "" {
		d := json.NewDecoder(strings.NewReader(params))
		d.UseNumber()
		if err := d.Decode(&req.Params); err != nil {
			t.Fatal(err)
		}
	}
	return set.Decide(&req).Action
}

func loadSuggestion(t *testing.T, data string) *policy.Set {
	t.Helper()
	d := t.TempDir()
	p := filepath.Join(d, "suggested.yaml")
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	// The same checks as the commands users run.
	if code, out, errs := run(t, "", "policy", "check", p); code != exitOK {
		t.Fatalf("policy check: %d %s %s\n%s", code, out, errs, data)
	}
	if code, out, errs := run(t, "", "policy", "lint", p); code != exitOK {
		t.Fatalf("policy lint: %d %s %s\n%s", code, out, errs, data)
	}
	set, err := policy.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// Calls made through the real gateway: the suggestion allows each allowed one, leaves the
// denied tool and the redacted password out, and denies calls beyond what was seen.
func TestPolicySuggestGatewayLedger(t *testing.T) {
	calls := []string{
		`{"tool":"fetch_customer_names","params":{"limit":50}}`,
		`{"tool":"fetch_customer_names","params":{"limit":500}}`,
		`{"tool":"fetch_customer_names","params":{"limit":5,"password":"hunter2"}}`,
		`{"tool":"fetch_customer_names","params":{"limit":1001}}`,
		`{"tool":"delete_file","params":{"path":"/tmp/x"}}`,
	}
	want := []string{"ALLOW", "ALLOW", "ALLOW", "DENY", "DENY"}
	for i := range 10 {
		calls = append(calls, fmt.Sprintf(`{"tool":"save_report","params":{"file_path":"/reports/q%d_sales-%d.pdf","file_size_bytes":%d}}`, i, i*7, 1000+i*100))
		want = append(want, "ALLOW")
	}
	dir, _ := replayGatewayLedger(t, calls, want)
	code, out, errs := run(t, "", "policy", "suggest", "--data", dir, "--agent", app.DemoAgent)
	if code != exitOK || !strings.Contains(errs, "over 13 allowed decisions: 0 would be denied or held, 0 undecidable") {
		t.Fatalf("suggest: %d %s\n%s", code, errs, out)
	}
	for _, s := range []string{
		`password: redacted in 1 of 3 calls: not turned into a pattern`,
		`min_value: 4`, `max_value: 600`,
		`match: "^/reports/q[a-z0-9\\-_]{7,12}\\.pdf$"`, // prefix, characters seen, lengths 9-10 widened, suffix
		`default_action: DENY`,
	} {
		if !strings.Contains(out, s) {
			t.Errorf("suggestion lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "delete_file") {
		t.Errorf("suggestion holds a redacted value or a denied tool:\n%s", out)
	}
	set := loadSuggestion(t, out)
	now := time.Now()
	for i, c := range calls {
		var req struct {
			Tool   string          `json:"tool"`
			Params json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal([]byte(c), &req); err != nil {
			t.Fatal(err)
		}
		got := suggestDecide(t, set, app.DemoAgent, req.Tool, string(req.Params), now, nil)
		if (want[i] == "ALLOW") != (got == policy.Allow) {
			t.Errorf("%s: %s under the suggestion, %s recorded", c, got, want[i])
		}
	}
	for _, c := range []struct{ tool, params string }{
		{"fetch_customer_names", `{"limit":601}`},
		{"fetch_customer_names", `{"limit":3}`},
		{"save_report", `{"file_path":"/etc/passwd","file_size_bytes":1000}`},
		{"save_report", `{"file_path":"/reports/q1_x.pdf/../../etc","file_size_bytes":1000}`},
		{"save_report", `{"file_path":"/reports/q1_s.pdf","file_size_bytes":99999}`},
		{"delete_file", `{"path":"/tmp/x"}`},
		{"unknown_tool", `{}`},
	} {
		if got := suggestDecide(t, set, app.DemoAgent, c.tool, c.params, now, nil); got != policy.Deny {
			t.Errorf("%s %s: %s, want DENY", c.tool, c.params, got)
		}
	}
	// --out writes the same policy and the report to standard output.
	f := filepath.Join(t.TempDir(), "s.yaml")
	code, rep, _ := run(t, "", "policy", "suggest", "--data", dir, "--agent", app.DemoAgent, "--out", f)
	if b, err := os.ReadFile(f); code != exitOK || err != nil || string(b) != out || !strings.Contains(rep, "0 would be denied") {
		t.Errorf("--out: %d %v %s", code, err, rep)
	}
	for _, args := range [][]string{{}, {"--agent", app.DemoAgent, "--margin", "-1"}, {"--agent", app.DemoAgent, "--timezone", "Mars/Base"}, {"--agent", app.DemoAgent, "--since", "soon"}} {
		if code, _, _ := run(t, "", append([]string{"policy", "suggest", "--data", dir}, args...)...); code != exitUsage {
			t.Errorf("%v: code %d, want %d", args, code, exitUsage)
		}
	}
	if code, _, errs := run(t, "", "policy", "suggest", "--data", dir, "--agent", "nobody"); code != exitFail || !strings.Contains(errs, "no allowed call") {
		t.Errorf("unknown agent: %d %s", code, errs)
	}
}

// suggestTraffic is two weeks of synthetic work of one agent in Berlin office hours, Monday to
// Friday, with one burst, a LOG decision and a denied tool: the ground truth of the golden file.
func suggestTraffic() []suggestCall {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	var out []suggestCall
	day := time.Date(2026, 11, 2, 0, 0, 0, 0, berlin) // a Monday
	tables := []string{"orders", "customers", "invoices"}
	n := 0
	for d := range 14 {
		at := day.AddDate(0, 0, d)
		if wd := at.Weekday(); wd == time.Saturday || wd == time.Sunday {
			continue
		}
		for h := 9; h < 17; h += 2 {
			n++
			out = append(out, suggestCall{"query_db", fmt.Sprintf(`{"table":%q,"rows":%d,"ratio":0.%d,"dry_run":true,"filter":{"region":"eu-%d"}}`, tables[n%3], 10+n*3, 1+n%9, n%2),
				at.Add(time.Duration(h)*time.Hour + time.Duration(n%50)*time.Minute), "allow"})
			out = append(out, suggestCall{"send_mail", fmt.Sprintf(`{"to":"user%d@example.com","subject":"Report %d"}`, n, n),
				at.Add(time.Duration(h)*time.Hour + 30*time.Minute), map[bool]string{true: "log", false: "allow"}[n%5 == 0]})
		}
	}
	burst := day.AddDate(0, 0, 3).Add(16 * time.Hour)
	for i := range 4 {
		out = append(out, suggestCall{"send_mail", fmt.Sprintf(`{"to":"user%d@example.com","subject":"Burst"}`, 100+i), burst.Add(time.Duration(i) * 10 * time.Second), "allow"})
	}
	out = append(out, suggestCall{"drop_table", `{"table":"orders"}`, day.Add(10 * time.Hour), "deny"})
	return out
}

func suggestLedger(t *testing.T, calls []suggestCall) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if _, _, err := app.Init(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(t, "", "audit", "keygen", "--data", dir); code != exitOK {
		t.Fatalf("keygen: %d %s", code, errs)
	}
	l, st := openDataLedger(t, dir, 0)
	for i, c := range calls {
		rule := "r_" + c.tool
		if c.dec == "deny" {
			rule = ""
		}
		_, err := l.Append(ctx, &ledger.Record{Kind: ledger.KindDecision, Time: c.at, DecisionID: fmt.Sprintf("dec_%03d", i), Source: "http",
			Agent: &ledger.Principal{ID: "ops-agent", Verified: true, Method: "api_key"}, Tool: c.tool, Params: json.RawMessage(c.params),
			Decision: c.dec, Policy: &ledger.Policy{Version: "sha256:x", Rule: rule}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()
	return dir
}

func TestPolicySuggestGolden(t *testing.T) {
	calls := suggestTraffic()
	dir := suggestLedger(t, calls)
	args := []string{"policy", "suggest", "--data", dir, "--agent", "ops-agent", "--since", "2026-11-01T00:00:00Z", "--until", "2026-12-01T00:00:00Z", "--timezone", "Europe/Berlin"}
	code, out, errs := run(t, "", args...)
	if code != exitOK || !strings.Contains(errs, fmt.Sprintf("over %d allowed decisions: 0 would be denied or held, 0 undecidable", len(calls)-1)) {
		t.Fatalf("suggest: %d %s\n%s", code, errs, out)
	}
	// Deterministic: the same ledger gives the same bytes.
	if _, again, _ := run(t, "", args...); again != out {
		t.Errorf("two runs differ:\n%s\n---\n%s", out, again)
	}
	// Without --timezone, the zone of the agent's configured policy.
	if err := os.WriteFile(filepath.Join(dir, "policies", "ops-agent.yaml"), []byte("agent_id: ops-agent\ntimezone: Europe/Berlin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, again, _ := run(t, "", args[:len(args)-2]...); again != out {
		t.Errorf("the configured policy's zone is not the default:\n%s", again)
	}
	golden := filepath.Join("testdata", "suggest_ops_agent.yaml")
	if os.Getenv("PORTCULLIS_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil || !bytes.Equal(want, []byte(out)) {
		t.Errorf("suggestion differs from %s (%v; PORTCULLIS_UPDATE_GOLDEN=1 rewrites it):\n%s", golden, err, out)
	}

	// The guide shows this suggestion as its example.
	doc, err := os.ReadFile("../../docs/policy-lifecycle.md")
	if err != nil || !bytes.Contains(doc, []byte("```yaml\n"+out+"```")) {
		t.Errorf("docs/policy-lifecycle.md does not show the golden suggestion (%v)", err)
	}

	set := loadSuggestion(t, out)
	for _, c := range calls {
		got := suggestDecide(t, set, "ops-agent", c.tool, c.params, c.at, nil)
		if (c.dec != "deny") != (got == policy.Allow) {
			t.Errorf("%s %s at %s: %s under the suggestion, %s recorded", c.tool, c.params, c.at, got, c.dec)
		}
	}
	tue := time.Date(2026, 11, 17, 10, 0, 0, 0, time.UTC) // 11:00 in Berlin
	ok := `{"table":"orders","rows":20,"ratio":0.5,"dry_run":true,"filter":{"region":"eu-1"}}`
	if got := suggestDecide(t, set, "ops-agent", "query_db", ok, tue, nil); got != policy.Allow {
		t.Fatalf("an observed shape on a working day: %s", got)
	}
	burst := &policy.CallList{}
	for i := range 5 {
		burst.Calls = append(burst.Calls, policy.Call{Tool: "send_mail", Time: tue.Add(-time.Duration(i+1) * time.Second)})
	}
	for name, c := range map[string]struct {
		tool, params string
		at           time.Time
		hist         policy.History
	}{
		"a table not seen":      {"query_db", strings.Replace(ok, "orders", "secrets", 1), tue, nil},
		"too many rows":         {"query_db", strings.Replace(ok, `"rows":20`, `"rows":1000`, 1), tue, nil},
		"a region not seen":     {"query_db", strings.Replace(ok, "eu-1", "us-1", 1), tue, nil},
		"dry_run off":           {"query_db", strings.Replace(ok, "true", "false", 1), tue, nil},
		"no dry_run":            {"query_db", `{"table":"orders","rows":20,"ratio":0.5,"filter":{"region":"eu-1"}}`, tue, nil},
		"Saturday":              {"query_db", ok, tue.AddDate(0, 0, 4), nil},
		"03:00 in Berlin":       {"query_db", ok, tue.Add(-8 * time.Hour), nil},
		"a recipient not seen":  {"send_mail", `{"to":"boss@attacker.example","subject":"Report 1"}`, tue, nil},
		"6 mails in one minute": {"send_mail", `{"to":"user1@example.com","subject":"Report 1"}`, tue, burst},
		"the denied tool":       {"drop_table", `{"table":"orders"}`, tue, nil},
		"a tool never called":   {"read_file", `{}`, tue, nil},
	} {
		if got := suggestDecide(t, set, "ops-agent", c.tool, c.params, c.at, c.hist); got != policy.Deny {
			t.Errorf("%s: %s, want DENY", name, got)
		}
	}
}

// A gateway that blocks nothing for its inspection: the suggestion holds high-threat calls (lint
// asks for a threat rule), so a call that was allowed at a high threat level would now be held,
// and the command says so, names the decision and exits 1.
func TestPolicySuggestVerifyFails(t *testing.T) {
	calls := suggestTraffic()[:6]
	dir := suggestLedger(t, calls)
	cfg := filepath.Join(dir, app.ConfigFile)
	b, err := os.ReadFile(cfg)
	if err != nil || !bytes.Contains(b, []byte("request_block_level: critical")) {
		t.Fatalf("config: %v %s", err, b)
	}
	if err := os.WriteFile(cfg, bytes.Replace(b, []byte("request_block_level: critical"), []byte("request_block_level: none"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"policy", "suggest", "--data", dir, "--agent", "ops-agent", "--since", "2026-11-01T00:00:00Z"}
	code, out, errs := run(t, "", args...)
	if code != exitOK || !strings.Contains(out, "threat_score: high") {
		t.Fatalf("no high-threat call yet: %d %s\n%s", code, errs, out)
	}
	loadSuggestion(t, out)

	l, st := openDataLedger(t, dir, 0)
	_, err = l.Append(context.Background(), &ledger.Record{Kind: ledger.KindDecision, Time: calls[0].at.Add(time.Minute), DecisionID: "dec_threat", Source: "http",
		Agent: &ledger.Principal{ID: "ops-agent", Verified: true, Method: "api_key"}, Tool: calls[0].tool, Params: json.RawMessage(calls[0].params),
		Decision: "allow", ThreatLevel: threat.High, Policy: &ledger.Policy{Version: "sha256:x", Rule: "r_query_db"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	code, _, errs = run(t, "", args...)
	if code != exitFail || !strings.Contains(errs, "would change allowed decisions") || !strings.Contains(errs, "ALLOW→CONSTRAIN 1 (e.g. dec_threat)") {
		t.Errorf("an allowed call the suggestion would hold: %d %s", code, errs)
	}
}

// Parameters a condition cannot honestly cover get none, and the policy still allows every call
// it was learned from: a dotted name, mixed types, an optional parameter, an empty list, bytes
// nesting beyond four levels; long strings get max_length.
func TestPolicySuggestOddParameters(t *testing.T) {
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	var params []string
	for i := range 12 {
		p := fmt.Sprintf(`{"a.b":%d,"mixed":%s,"list":%s,"s":"%s","arr":%s,"deep":{"x":{"y":{"z":{"w":%d}}}},"long":"%s"%s}`,
			i, map[bool]string{true: `"x"`, false: "5"}[i%2 == 0], map[bool]string{true: "[]", false: "[1]"}[i == 3],
			map[bool]string{true: "\xff", false: "ok"}[i == 4], map[bool]string{true: `["p","q"]`, false: `"p"`}[i%3 == 0], i,
			strings.Repeat("ab", 600+i*10), map[bool]string{true: `,"opt":1`, false: ""}[i == 5])
		params = append(params, p)
	}
	s := newSuggester("odd-agent", time.UTC, 0.2)
	for i, p := range params {
		s.observe(&ledger.Record{Kind: ledger.KindDecision, Time: at.Add(time.Duration(i) * time.Hour), DecisionID: fmt.Sprintf("dec_%d", i),
			Agent: &ledger.Principal{ID: "odd-agent"}, Tool: "odd", Params: json.RawMessage(p), Decision: "allow", Policy: &ledger.Policy{Rule: "r"}})
	}
	data := s.render(false)
	set, err := checkSuggestion(data, policy.DefaultLintOptions)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	out := string(data)
	for _, want := range []string{
		`a.b: not constrained: a name a dotted path cannot spell`,
		`mixed: not constrained: values of several types (number, string)`,
		`opt: not constrained: sent in 1 of 12 calls`,
		`list: not constrained: an empty list was sent`,
		`one_of: ["p", "q"]`,
		// The decoder reads bytes that are not UTF-8 as U+FFFD, as replay and the gateway do.
		`one_of: ["ok", "` + "\ufffd" + `"]`,
		// 40 characters of prefix and suffix at most; the middle's 1,120-1,340 widened by 20 %.
		`match: "^` + strings.Repeat("ab", 20) + `[a-z]+` + strings.Repeat("ab", 20) + `$"`,
		`max_length: 1688`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("suggestion lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"deep.x.y.z.w"`) {
		t.Errorf("a condition deeper than four levels:\n%s", out)
	}
	for i, p := range params {
		if got := suggestDecide(t, set, "odd-agent", "odd", p, at.Add(time.Duration(i)*time.Hour), nil); got != policy.Allow {
			t.Errorf("call %d: %s under the suggestion", i, got)
		}
	}
	long := strings.Replace(params[1], strings.Repeat("ab", 610), strings.Repeat("ab", 1000), 1)
	if got := suggestDecide(t, set, "odd-agent", "odd", long, at, nil); got != policy.Deny {
		t.Errorf("a string far longer than seen: %s", got)
	}
}

// Past the first suggestSettle values strings are folded one by one: a later value that is
// shorter, or ends differently, moves characters from the suffix into the middle, and the
// pattern still covers every value and only the characters seen in the middle.
func TestSuggestPatternStreams(t *testing.T) {
	var vals []string
	for i := range 200 {
		switch {
		case i < 150:
			vals = append(vals, fmt.Sprintf("item-%04d.end", i))
		case i < 190:
			vals = append(vals, fmt.Sprintf("item-%d.end", i)) // shorter: the suffix must not overlap the prefix
		default:
			vals = append(vals, fmt.Sprintf("item-%dd", i)) // another ending: "d" stays the suffix
		}
	}
	p := ps(&toolStats{params: map[string]*paramStats{}}, "id")
	for _, v := range vals {
		p.value(v)
	}
	suf, cls, lo, hi := p.middle()
	if p.prefix != "item-" || suf != "d" || cls.pattern() != `[a-z0-9.]` || lo != 3 || hi != 7 {
		t.Fatalf("prefix %q suffix %q class %s lengths %d-%d", p.prefix, suf, cls.pattern(), lo, hi)
	}
	s := newSuggester("a", time.UTC, 0)
	ts := &toolStats{params: map[string]*paramStats{"id": p}, paramCalls: len(vals), calls: len(vals)}
	p.present = len(vals)
	conds, _ := s.conditions(ts)
	if len(conds) != 2 || conds[1] != `        match: "^item-[a-z0-9.]{3,7}d$"` {
		t.Fatalf("conditions %q", conds)
	}
	re := regexp.MustCompile(`^item-[a-z0-9.]{3,7}d$`)
	for _, v := range vals {
		if !re.MatchString(v) {
			t.Errorf("%q does not match", v)
		}
	}
}
