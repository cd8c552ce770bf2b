package config

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The two messages a user met before: a misspelt key and a duration in words. Each is now one
// line at its position with its key path and what to write instead, and both come at once.
func TestParseReportsEveryProblemWithPositionAndHint(t *testing.T) {
	src := "listne: 127.0.0.1:9\n" +
		"approvals:\n  expiry: 5 seconds\n" +
		"limits:\n  max_depth: deep\n  max_body_bytes: 8 MB\n  read_timeout_seconds: 30s\n" +
		"log:\n  level: verbose\n" +
		"llm:\n  timeout: 90\n"
	_, err := Parse("gw.yaml", []byte(src))
	var list ErrorList
	if !errors.As(err, &list) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("want an ErrorList matching ErrInvalid, got %T %v", err, err)
	}
	want := []struct{ at, key, msg, hint string }{
		{"gw.yaml:1:1", "listne", `unknown key "listne"`, `did you mean "listen"?`},
		{"gw.yaml:3:11", "approvals.expiry", `want a duration, got the string "5 seconds"`, `did you mean "5s"?`},
		{"gw.yaml:5:14", "limits.max_depth", `want a whole number, got the string "deep"`, "whole number"},
		{"gw.yaml:7:25", "limits.read_timeout_seconds", "want a whole number", "write 30, not 30s"},
		{"gw.yaml:9:10", "log.level", `want debug, info, warn or error, got "verbose"`, ""},
		{"gw.yaml:11:12", "llm.timeout", "want a duration, got the integer 90", "write 90s for seconds"},
	}
	if len(list) != len(want) {
		t.Fatalf("want %d problems, got %d:\n%v", len(want), len(list), err)
	}
	for i, w := range want {
		e := list[i]
		at := strings.Join(strings.SplitN(e.Error(), ":", 4)[:3], ":")
		if at != w.at || e.Key != w.key || !strings.Contains(e.Msg, w.msg) || !strings.Contains(e.Hint, w.hint) {
			t.Errorf("problem %d: got %s (hint %q), want %s %s: %s (hint %q)", i, e, e.Hint, w.at, w.key, w.msg, w.hint)
		}
	}
	// The messages speak the file's language, never the program's types.
	goTypes := regexp.MustCompile(`config\.|time\.Duration|int64|!!|unmarshal|struct`)
	for _, e := range list {
		if goTypes.MatchString(e.Error() + e.Hint) {
			t.Errorf("message names a Go type or decoder detail: %s / %s", e, e.Hint)
		}
	}
}

func TestParseHumanDurationsAndSizes(t *testing.T) {
	c, err := Parse("gw.yaml", []byte("approvals:\n  expiry: 2d\n  max_wait: 1m30s\n"+
		"limits:\n  max_body_bytes: 8MiB\n  max_header_bytes: 32 KiB\n  max_outcome_result_bytes: 1.5MB\n"+
		"llm:\n  max_request_bytes: 2048\n  timeout: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Approvals.Expiry != 48*time.Hour || c.Approvals.MaxWait != 90*time.Second {
		t.Errorf("durations: %v %v", c.Approvals.Expiry, c.Approvals.MaxWait)
	}
	if c.Limits.MaxBodyBytes != 8<<20 || c.Limits.MaxHeaderBytes != 32<<10 || c.Limits.MaxOutcomeResultBytes != 1_500_000 || c.LLM.MaxRequestBytes != 2048 || c.LLM.Timeout != 0 {
		t.Errorf("sizes: %+v %+v", c.Limits, c.LLM)
	}
	for _, bad := range []string{"8 parsecs", "-1MiB", "0.5B", "1e3", "99999999GiB"} {
		_, err := Parse("gw.yaml", []byte("limits:\n  max_body_bytes: "+bad+"\n"))
		if err == nil || !strings.Contains(err.Error(), "gw.yaml:2:19: limits.max_body_bytes") {
			t.Errorf("size %q: %v", bad, err)
		}
	}
}

func TestParseStructuralProblems(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"duplicate key", "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n", `gw.yaml:2:1: listen: key "listen" written twice`},
		{"anchors", "identity:\n  roles: &r {a: {permissions: [x]}}\ntools: *r\n", "anchors and aliases are not allowed"},
		{"custom tag", "listen: !env PORT\n", "custom YAML tag !env"},
		{"mapping for a list", "policies:\n  a: b\n", "gw.yaml:2:3: policies: want a list, got a mapping"},
		{"list for a mapping", "limits: [1, 2]\n", "gw.yaml:1:9: limits: want a mapping, got a list"},
		{"bad item keeps its index", "approvals:\n  approvers:\n    - id: a\n      scopes: [{agents: [x], tools: [y]}]\n    - id: [b]\n",
			"gw.yaml:5:11: approvals.approvers[1].id: want a single value"},
		{"unknown key deep", "identity:\n  agents:\n    - id: a\n      role: [x]\n", `gw.yaml:4:7: identity.agents[0].role: unknown key "role"`},
		{"syntax", "listen: [\n", "gw.yaml:1:1: YAML syntax error"},
		{"second document", "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n", "gw.yaml:2:1: only one YAML document"},
		{"out of range", "limits:\n  max_depth: 99999999999999999999\n", "out of range"},
		{"boolean", "inspection:\n  resolve_hosts: \"yes\"\n", "want true or false"},
		{"timestamp", "identity:\n  agents:\n    - id: a\n      signing_keys:\n        - id: k\n          public_key: x\n          not_after: soon\n", "want a date and time"},
		{"huge", strings.Repeat("#", MaxFileBytes+1), "larger than the limit"},
		{"not utf-8", "listen: \xff\n", "not valid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("gw.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// A file of thousands of mistakes is answered with a bounded list.
func TestParseCapsTheProblems(t *testing.T) {
	var b strings.Builder
	for i := range 5000 {
		b.WriteString("k")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString(string(rune('a' + i%26)))
		b.WriteString(strings.Repeat("y", i/26))
		b.WriteString(": 1\n")
	}
	_, err := Parse("gw.yaml", []byte(b.String()))
	var list ErrorList
	if !errors.As(err, &list) || len(list) != maxErrors+1 || !strings.Contains(list[maxErrors].Msg, "more problems") {
		t.Fatalf("got %d problems", len(list))
	}
}

// Validation problems under a value already reported are not repeated.
func TestParseOneProblemPerMistake(t *testing.T) {
	_, err := Parse("gw.yaml", []byte("approvals:\n  approvers:\n    - [x]\n"))
	if err == nil || strings.Count(err.Error(), "\n") != 0 || !strings.Contains(err.Error(), "approvals.approvers[0]: want a mapping") {
		t.Errorf("got %v", err)
	}
}

func TestChanged(t *testing.T) {
	a, err := Parse("a.yaml", []byte("listen: 127.0.0.1:1\nlimits:\n  max_depth: 10\napprovals:\n  id_claim: email\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("b.yaml", []byte("listen: 127.0.0.1:2\nlimits:\n  max_depth: 10\n  max_params: 5\napprovals:\n  id_claim: sub\nmcp:\n  upstreams: [{name: a, url: http://a/mcp}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(Changed(a, b), " ")
	if want := "approvals.id_claim limits.max_params listen mcp.upstreams"; got != want {
		t.Errorf("Changed = %q, want %q", got, want)
	}
	if c := Changed(a, a); len(c) != 0 {
		t.Errorf("a file compared with itself changed: %v", c)
	}
}

// FuzzParse: any bytes are a configuration or a list of problems, never a panic, and every
// problem has a position inside the file.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "listen: 127.0.0.1:1\n", "limits:\n  max_body_bytes: 8MiB\n", "approvals:\n  expiry: 2d\n  approvers: [{id: a, scopes: [{agents: [x], tools: [y]}]}]\n",
		"a: &x [1]\nb: *x\n", "identity:\n  agents:\n    - id: a\n      signing_keys: [{id: k, public_key: x, not_after: 2027-01-01}]\n", "- 1\n- 2\n", "{{{", "tools: {a: {classification: x}, a: {}}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse("f.yaml", data)
		var list ErrorList
		if err == nil || !errors.As(err, &list) {
			return
		}
		lines := strings.Count(string(data), "\n") + strings.Count(string(data), "\r") + 2 // YAML breaks lines at either
		for _, e := range list {
			if e.Line < 1 || e.Line > lines || e.Col < 1 {
				t.Errorf("position %d:%d outside the file: %v", e.Line, e.Col, e)
			}
		}
	})
}
