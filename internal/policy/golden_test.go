package policy

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current results")

// seedCase is one request against the seed policies with the decision the seed's prose implies.
type seedCase struct {
	name string
	req  *Request
	want Action
	rule string
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func calls(tool string, now time.Time, agoMinutes ...int) History {
	l := &CallList{}
	for _, m := range agoMinutes {
		l.Calls = append(l.Calls, Call{Tool: tool, Time: now.Add(-time.Duration(m) * time.Minute)})
	}
	return l
}

func sales(t, qt string, days any, lvl threat.Level) *Request {
	p := map[string]any{"query_type": qt}
	if days != nil {
		p["date_range_days"] = days
	}
	return &Request{Agent: Agent{ID: "report-generator-v1"}, Tool: "fetch_sales_data", Params: p, Time: at(t), Threat: lvl}
}

func rg(tool string, params map[string]any, lvl threat.Level) *Request {
	return &Request{Agent: Agent{ID: "report-generator-v1"}, Tool: tool, Params: params, Time: at("2026-03-10T10:00:00-04:00"), Threat: lvl}
}

func export(t string, rows float64, perm bool, hist History) *Request {
	u := &User{ID: "alice"}
	if perm {
		u.Permissions = []string{"data_export"}
	}
	return &Request{Agent: Agent{ID: "customer-export-agent"}, User: u, Tool: "export_customer_data",
		Params: map[string]any{"export_size_rows": rows}, Time: at(t), History: hist}
}

func abac(region any, clearance []string, roles, perms []string, user bool) *Request {
	r := &Request{Agent: Agent{ID: "regional-sales-agent", Roles: roles, Permissions: perms}, Tool: "fetch_sales_data",
		Params: map[string]any{"region": region}, Time: at("2026-03-10T10:00:00Z")}
	if region == nil {
		r.Params = map[string]any{}
	}
	if user {
		r.User = &User{ID: "bob", Attributes: map[string][]string{"region": {"us-east", "eu-west"}}}
		if clearance != nil {
			r.User.Attributes["clearance"] = clearance
		}
	}
	return r
}

func prose(t, q string) *Request {
	return &Request{Agent: Agent{ID: "reporting-agent"}, Tool: "fetch_sales_data", Params: map[string]any{"query": q}, Time: at(t)}
}

func seedCases() []seedCase {
	none, med, high, crit := threat.None, threat.Medium, threat.High, threat.Critical
	exportNow := at("2026-03-10T10:00:00-04:00") // a Tuesday, inside business hours
	reporting := []string{"reporting"}
	salesRead := []string{"sales_read"}
	return []seedCase{
		// Example 1: time_of_day 09:00–17:00 New York, on an ordinary day (EDT, -04:00).
		{"sales 08:59 NY", sales("2026-03-10T08:59:00-04:00", "monthly", 30.0, none), Deny, ""},
		{"sales 09:00 NY", sales("2026-03-10T09:00:00-04:00", "monthly", 30.0, none), Allow, "read_sales_data"},
		{"sales 16:59 NY", sales("2026-03-10T16:59:00-04:00", "quarterly", 30.0, none), Allow, "read_sales_data"},
		{"sales 17:00 NY", sales("2026-03-10T17:00:00-04:00", "annual", 30.0, none), Deny, ""},
		// The day DST starts (2026-03-08, 02:00 EST → 03:00 EDT): 09:00 local is 13:00Z, not 14:00Z.
		{"DST start 08:59 EDT (12:59Z)", sales("2026-03-08T12:59:00Z", "monthly", 30.0, none), Deny, ""},
		{"DST start 09:00 EDT (13:00Z)", sales("2026-03-08T13:00:00Z", "monthly", 30.0, none), Allow, "read_sales_data"},
		{"DST start 16:59 EDT (20:59Z)", sales("2026-03-08T20:59:00Z", "monthly", 30.0, none), Allow, "read_sales_data"},
		{"DST start 17:00 EDT (21:00Z)", sales("2026-03-08T21:00:00Z", "monthly", 30.0, none), Deny, ""},
		{"day before DST 08:59 EST (13:59Z)", sales("2026-03-07T13:59:00Z", "monthly", 30.0, none), Deny, ""},
		{"day before DST 09:00 EST (14:00Z)", sales("2026-03-07T14:00:00Z", "monthly", 30.0, none), Allow, "read_sales_data"},
		// The day DST ends (2026-11-01, 02:00 EDT → 01:00 EST): 09:00 local is 14:00Z.
		{"DST end 08:59 EST (13:59Z)", sales("2026-11-01T13:59:00Z", "monthly", 30.0, none), Deny, ""},
		{"DST end 09:00 EST (14:00Z)", sales("2026-11-01T14:00:00Z", "monthly", 30.0, none), Allow, "read_sales_data"},
		{"DST end 16:59 EST (21:59Z)", sales("2026-11-01T21:59:00Z", "monthly", 30.0, none), Allow, "read_sales_data"},
		{"DST end 17:00 EST (22:00Z)", sales("2026-11-01T22:00:00Z", "monthly", 30.0, none), Deny, ""},
		{"day before DST end 09:00 EDT (13:00Z)", sales("2026-10-31T13:00:00Z", "monthly", 30.0, none), Allow, "read_sales_data"},
		// Parameters.
		{"date_range_days 90", sales("2026-03-10T10:00:00-04:00", "monthly", 90.0, none), Allow, "read_sales_data"},
		{"date_range_days 91", sales("2026-03-10T10:00:00-04:00", "monthly", 91.0, none), Deny, ""},
		{"date_range_days as string", sales("2026-03-10T10:00:00-04:00", "monthly", "90", none), Deny, ""},
		{"date_range_days missing", sales("2026-03-10T10:00:00-04:00", "monthly", nil, none), Deny, ""},
		{"query_type weekly", sales("2026-03-10T10:00:00-04:00", "weekly", 30.0, none), Deny, ""},
		{"query_type with injection", sales("2026-03-10T10:00:00-04:00", "monthly' OR 1=1--", 30.0, none), Deny, ""},
		{"limit 1000", rg("fetch_customer_names", map[string]any{"limit": 1000.0}, none), Allow, "read_customer_list"},
		{"limit 1001", rg("fetch_customer_names", map[string]any{"limit": 1001.0}, none), Deny, ""},
		{"report path ok", rg("save_report", map[string]any{"file_path": "/reports/q1_summary.pdf", "file_size_bytes": 1000.0}, none), Allow, "write_report"},
		{"report path with ..", rg("save_report", map[string]any{"file_path": "/reports/../etc/passwd.pdf", "file_size_bytes": 1000.0}, none), Deny, ""},
		{"report path ..pdf", rg("save_report", map[string]any{"file_path": "/reports/..pdf", "file_size_bytes": 1000.0}, none), Deny, ""},
		{"report 10485760 bytes", rg("save_report", map[string]any{"file_path": "/reports/big.pdf", "file_size_bytes": 10485760.0}, none), Allow, "write_report"},
		{"report 10485761 bytes", rg("save_report", map[string]any{"file_path": "/reports/big.pdf", "file_size_bytes": 10485761.0}, none), Deny, ""},
		// Threat signals only tighten.
		{"threat medium on allowed call", sales("2026-03-10T10:00:00-04:00", "monthly", 30.0, med), Allow, "read_sales_data"},
		{"threat high on allowed call", sales("2026-03-10T10:00:00-04:00", "monthly", 30.0, high), Constrain, "high_risk_api_call"},
		{"threat critical on allowed call", sales("2026-03-10T10:00:00-04:00", "monthly", 30.0, crit), Constrain, "high_risk_api_call"},
		{"threat high on a tool no rule permits", rg("send_email", map[string]any{"to": "x@example.com"}, high), Deny, ""},
		{"threat high on a denied parameter", sales("2026-03-10T10:00:00-04:00", "monthly", 91.0, high), Deny, ""},
		{"delete_file", rg("delete_file", map[string]any{"path": "/reports/a.pdf"}, none), Deny, "delete_operations"},
		{"delete_file threat high", rg("delete_file", map[string]any{"path": "/reports/a.pdf"}, high), Deny, "delete_operations"},
		{"unknown agent", &Request{Agent: Agent{ID: "nobody"}, Tool: "fetch_sales_data", Time: exportNow}, Deny, ""},

		// Example 2: bulk export with the context-aware rule.
		{"export 9999 rows, permission, office hours", export("2026-03-10T10:00:00-04:00", 9999, true, nil), Allow, "export_for_permitted_users"},
		{"export 10000 rows, permission, office hours", export("2026-03-10T10:00:00-04:00", 10000, true, nil), Allow, "export_for_permitted_users"},
		{"export 10000 rows, permission, 02:00 (unusual)", export("2026-03-10T02:00:00-04:00", 10000, true, nil), Constrain, "bulk_export_requires_approval"},
		{"export 9999 rows, permission, 02:00", export("2026-03-10T02:00:00-04:00", 9999, true, nil), Allow, "export_for_permitted_users"},
		{"export 10000 rows, no permission, 02:00", export("2026-03-10T02:00:00-04:00", 10000, false, nil), Deny, ""},
		{"export 9999 rows, no permission", export("2026-03-10T10:00:00-04:00", 9999, false, nil), Deny, ""},
		{"export 10000 rows, Saturday 10:00 (unusual)", export("2026-03-14T10:00:00-04:00", 10000, true, nil), Constrain, "bulk_export_requires_approval"},
		{"export 10000 rows, 07:59 (unusual)", export("2026-03-10T07:59:00-04:00", 10000, true, nil), Constrain, "bulk_export_requires_approval"},
		{"export 10000 rows, 08:00", export("2026-03-10T08:00:00-04:00", 10000, true, nil), Allow, "export_for_permitted_users"},
		{"export 10000 rows, 17:59", export("2026-03-10T17:59:00-04:00", 10000, true, nil), Allow, "export_for_permitted_users"},
		{"export 10000 rows, 18:00 (unusual)", export("2026-03-10T18:00:00-04:00", 10000, true, nil), Constrain, "bulk_export_requires_approval"},
		{"export 5th call in 60 minutes", export("2026-03-10T10:00:00-04:00", 10000, true, calls("export_customer_data", exportNow, 5, 15, 30, 59)), Allow, "export_for_permitted_users"},
		{"export 6th call in 60 minutes", export("2026-03-10T10:00:00-04:00", 10000, true, calls("export_customer_data", exportNow, 5, 15, 30, 45, 59)), Constrain, "bulk_export_requires_approval"},
		{"export 6 calls but one 61 minutes ago", export("2026-03-10T10:00:00-04:00", 10000, true, calls("export_customer_data", exportNow, 5, 15, 30, 45, 61)), Allow, "export_for_permitted_users"},
		{"export earlier calls to another tool", export("2026-03-10T10:00:00-04:00", 10000, true, calls("fetch_sales_data", exportNow, 1, 2, 3, 4, 5, 6)), Allow, "export_for_permitted_users"},
		{"export 6th call, 9999 rows", export("2026-03-10T10:00:00-04:00", 9999, true, calls("export_customer_data", exportNow, 5, 15, 30, 45, 59)), Allow, "export_for_permitted_users"},

		// Example 3: ABAC.
		{"abac region the user has", abac("us-east", []string{"internal"}, reporting, salesRead, true), Allow, "read_regional_sales"},
		{"abac region the user lacks", abac("ap-south", []string{"internal"}, reporting, salesRead, true), Deny, ""},
		{"abac regions all held", abac([]any{"us-east", "eu-west"}, []string{"internal"}, reporting, salesRead, true), Allow, "read_regional_sales"},
		{"abac regions one lacking", abac([]any{"us-east", "ap-south"}, []string{"internal"}, reporting, salesRead, true), Deny, ""},
		{"abac region missing", abac(nil, []string{"internal"}, reporting, salesRead, true), Deny, ""},
		{"abac classification above clearance", abac("us-east", []string{"public"}, reporting, salesRead, true), Deny, ""},
		{"abac clearance above classification", abac("us-east", []string{"restricted"}, reporting, salesRead, true), Allow, "read_regional_sales"},
		{"abac user without clearance", abac("us-east", nil, reporting, salesRead, true), Deny, ""},
		{"abac agent without the role", abac("us-east", []string{"internal"}, []string{"support"}, salesRead, true), Deny, ""},
		{"abac role without sales_read", abac("us-east", []string{"internal"}, reporting, nil, true), Deny, ""},
		{"abac no invoking user", abac("us-east", []string{"internal"}, reporting, salesRead, false), Deny, ""},

		// Example 4 (prose): 08:00–18:00 Mon–Fri, query ^[a-z0-9_]+$.
		{"prose Monday 08:00", prose("2026-03-09T08:00:00-04:00", "monthly_sales"), Allow, "fetch_sales_data_office_hours"},
		{"prose Monday 07:59", prose("2026-03-09T07:59:00-04:00", "monthly_sales"), Deny, ""},
		{"prose Friday 17:59", prose("2026-03-13T17:59:00-04:00", "q1"), Allow, "fetch_sales_data_office_hours"},
		{"prose Friday 18:00", prose("2026-03-13T18:00:00-04:00", "q1"), Deny, ""},
		{"prose Saturday 10:00", prose("2026-03-14T10:00:00-04:00", "q1"), Deny, ""},
		{"prose upper-case query", prose("2026-03-10T10:00:00-04:00", "Monthly"), Deny, ""},
	}
}

type goldenLine struct {
	Case            string      `json:"case"`
	Decision        Action      `json:"decision"`
	Rule            string      `json:"rule"`
	Enforcement     string      `json:"enforcement"`
	RuleEnforcement string      `json:"rule_enforcement,omitempty"`
	Reason          string      `json:"reason"`
	Explain         []RuleTrace `json:"explain"`
}

// TestSeedExamples loads the seed's examples verbatim and checks the table of boundary requests
// against the decisions the seed's prose implies; the full explanations are compared with
// testdata/seed.golden (go test -run TestSeedExamples -update rewrites it).
func TestSeedExamples(t *testing.T) {
	set, err := Load("testdata/seed")
	if err != nil {
		t.Fatalf("load seed examples: %v", err)
	}
	var buf bytes.Buffer
	for _, c := range seedCases() {
		d := set.Evaluate(c.req)
		if d.Action != c.want || d.Rule != c.rule {
			t.Errorf("%s: got %s (rule %q), want %s (rule %q)", c.name, d.Action, d.Rule, c.want, c.rule)
		}
		ex := set.Explain(c.req)
		if diff := cmp.Diff(d, ex.Decision); diff != "" {
			t.Errorf("%s: Explain and Evaluate disagree (-evaluate +explain):\n%s", c.name, diff)
		}
		line, err := json.Marshal(goldenLine{c.name, ex.Action, ex.Rule, ex.Enforcement, ex.RuleEnforcement, ex.Reason, ex.Rules})
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	golden := "testdata/seed.golden"
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), buf.String()); diff != "" {
		t.Errorf("explanations differ from %s (-want +got):\n%s", golden, diff)
	}
}

// TestSeedEnforcement checks the enforcement actions the seed maps each decision to.
func TestSeedEnforcement(t *testing.T) {
	set, err := Load("testdata/seed")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Decision{}
	for _, c := range seedCases() {
		d := set.Evaluate(c.req)
		got[d.Action.String()] = Decision{Action: d.Action, Enforcement: d.Enforcement}
	}
	want := map[string]Decision{
		"ALLOW":     {Action: Allow, Enforcement: "execute_tool"},
		"DENY":      {Action: Deny, Enforcement: "log_and_return_error"},
		"CONSTRAIN": {Action: Constrain, Enforcement: "log_and_queue_for_approval"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("enforcement (-want +got):\n%s", diff)
	}
	d := set.Evaluate(sales("2026-03-10T10:00:00-04:00", "monthly", 30.0, threat.High))
	if d.RuleEnforcement != RuleRequireApproval {
		t.Errorf("rule enforcement = %q, want %q", d.RuleEnforcement, RuleRequireApproval)
	}
}
