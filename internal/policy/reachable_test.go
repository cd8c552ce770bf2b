package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMayAllow(t *testing.T) {
	src := `agent_id: a1
default_action: DENY
rules:
  - name: read
    tool: "fs__read_.*"
    not_tool: fs__read_secret
    action: ALLOW
    conditions:
      - parameter: path
        match: "^/tmp/"
  - name: write
    tool: fs__write_file
    action: CONSTRAIN
  - name: kill
    tool: fs__delete
    action: DENY
  - name: sometimes-no
    tool: fs__list
    action: DENY
    conditions:
      - parameter: path
        match: "^/etc"
  - name: list
    tool: fs__list
    action: LOG
  - name: risky
    tool: ".*"
    action: CONSTRAIN
    conditions:
      - threat_score: high
`
	open := `agent_id: a2
default_action: ALLOW
rules:
  - name: never
    tool: shell
    action: DENY
`
	f1, err := Parse("a1.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	f2, err := Parse("a2.yaml", []byte(open))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(f1, f2)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		agent, tool string
		want        bool
	}{
		{"a1", "fs__read_text_file", true},
		{"a1", "fs__read_secret", false}, // excluded by not_tool
		{"a1", "fs__write_file", true},   // CONSTRAIN may run after approval
		{"a1", "fs__delete", false},      // unconditional DENY
		{"a1", "fs__list", true},         // conditional DENY leaves a path open
		{"a1", "fs__move_file", false},   // only the threat rule matches: it cannot open
		{"a2", "anything", true},         // default ALLOW
		{"a2", "shell", false},           // unconditional DENY beats the default
		{"nobody", "fs__read_text_file", false},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, set.MayAllow(tt.agent, tt.tool)); diff != "" {
			t.Errorf("MayAllow(%s, %s) (-want +got):\n%s", tt.agent, tt.tool, diff)
		}
	}
	var nilSet *Set
	if nilSet.MayAllow("a1", "fs__read_text_file") {
		t.Error("a nil set allowed a tool")
	}
}

func TestMayAllowWith(t *testing.T) {
	f, err := Parse("a.yaml", []byte(`agent_id: a
default_action: DENY
rules:
  - name: reads
    tool: mcp.resources.read
    action: ALLOW
    conditions:
      - parameter: uri
        match: "^test://"
      - parameter: subscribe
        equals: true
  - name: no_secrets
    tool: mcp.resources.read
    action: DENY
    conditions:
      - parameter: uri
        match: "^test://secret/"
  - name: late
    tool: mcp.resources.read
    action: DENY
    conditions:
      - parameter: uri
        match: "^test://late/"
      - time_of_day: {start: "00:00", end: "01:00", timezone: UTC}
`))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		uri  string
		want bool
	}{
		{"test://a", true},            // the uri holds; subscribe is unknown, so it may hold
		{"file:///etc/passwd", false}, // the one opening rule's known condition fails
		{"test://secret/k", false},    // a DENY whose every condition is known and holds
		{"test://late/x", true},       // a DENY with a condition unknown here does not close
	} {
		if got := set.MayAllowWith("a", "mcp.resources.read", map[string]any{"server": "s", "uri": tc.uri}); got != tc.want {
			t.Errorf("MayAllowWith(%s) = %v, want %v", tc.uri, got, tc.want)
		}
	}
}
