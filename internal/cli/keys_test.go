package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/portcullis-ai/portcullis/internal/identity"
)

func TestKeysLifecycle(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := run(t, "", "keys", "create", "--data", dir, "--agent", "report-generator-v1", "--label", "ci", "--ttl", "720h")
	if code != exitOK {
		t.Fatalf("create: %d %s", code, errOut)
	}
	key := strings.TrimSpace(out)
	id, err := identity.APIKeyID(key)
	if err != nil {
		t.Fatalf("printed key %q: %v", key, err)
	}
	if !strings.Contains(errOut, "shown once") {
		t.Errorf("create stderr = %q", errOut)
	}
	// The printed key authenticates against the stored hash.
	ks, err := identity.OpenFileKeyStore(filepath.Join(dir, identity.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	v, err := identity.New(identity.Config{Agents: []identity.AgentConfig{{ID: "report-generator-v1"}}}, identity.Options{Keys: ks})
	if err != nil {
		t.Fatal(err)
	}
	if a, err := v.Verify(t.Context(), identity.Credentials{APIKey: key}); err != nil || a.ID != "report-generator-v1" {
		t.Fatalf("verify printed key: %v %v", a, err)
	}
	run(t, "", "keys", "create", "--data", dir, "--agent", "report-generator-v1")
	code, _, errOut = run(t, "", "keys", "create", "--data", dir, "--agent", "report-generator-v1")
	if code != exitFail || !strings.Contains(errOut, "already has 2 active keys") || !strings.Contains(errOut, "hint: revoke") {
		t.Errorf("third key: %d %q", code, errOut)
	}

	code, out, _ = run(t, "", "keys", "list", "--data", dir, "--json", "--agent", "report-generator-v1")
	var rows []struct {
		ID, AgentID, Label, Status string
		Sha256                     string `json:"sha256"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != exitOK {
		t.Fatalf("list json %q: %v", out, err)
	}
	if len(rows) != 2 || rows[0].ID != id || rows[0].Label != "ci" || rows[0].Status != "active" || rows[0].Sha256 != "" {
		t.Errorf("rows = %+v", rows)
	}

	code, out, _ = run(t, "", "keys", "revoke", "--data", dir, key) // the whole key works too
	if code != exitOK || out != "revoked "+id+"\n" {
		t.Errorf("revoke: %d %q", code, out)
	}
	if _, err := v.Verify(t.Context(), identity.Credentials{APIKey: key}); identity.Code(err) != "credential_revoked" {
		t.Errorf("after revoke: %v", err)
	}
	code, out, _ = run(t, "", "keys", "list", "--data", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || len(lines) != 3 || !strings.Contains(lines[1], "revoked") || !strings.HasPrefix(lines[0], "ID") {
		t.Errorf("list table:\n%s", out)
	}
}

func TestKeysProblems(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PORTCULLIS_DATA", dir)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"keys"}, exitUsage, ""},
		{[]string{"keys", "rotate"}, exitUsage, `keys: unknown command "rotate"`},
		{[]string{"keys", "create"}, exitUsage, "keys create: --agent is required"},
		{[]string{"keys", "create", "--agent", "bad agent"}, exitUsage, "must match"},
		{[]string{"keys", "create", "--agent", "a", "--ttl", "-1h"}, exitUsage, "--ttl must not be negative"},
		{[]string{"keys", "revoke"}, exitUsage, "exactly one KEY_ID"},
		{[]string{"keys", "revoke", "0123456789abcdef"}, exitFail, `no key with id "0123456789abcdef"`},
	}
	for _, tc := range tests {
		code, _, errOut := run(t, "", tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: code %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
		if tc.want != "" && !strings.Contains(errOut, "hint:") {
			t.Errorf("%v: no hint in %q", tc.args, errOut)
		}
	}
	// PORTCULLIS_DATA is honoured.
	if code, _, _ := run(t, "", "keys", "create", "--agent", "a"); code != exitOK {
		t.Fatal("create with PORTCULLIS_DATA failed")
	}
	ks, _ := identity.OpenFileKeyStore(filepath.Join(dir, identity.KeyFileName))
	recs, _ := ks.List(t.Context(), "a")
	if diff := cmp.Diff(1, len(recs)); diff != "" || recs[0].CreatedAt.After(time.Now()) {
		t.Errorf("records: %+v", recs)
	}
}

// Approver keys are managed like agents' keys, in their own store: two active at most, listed,
// revoked by ID or by the whole key, and never found among agents' keys.
func TestApproverKeysLifecycle(t *testing.T) {
	dir := t.TempDir()
	var keys []string
	for range 2 {
		code, out, errOut := run(t, "", "approvals", "keys", "create", "--data", dir, "--approver", "alice@example.com")
		if code != exitOK {
			t.Fatalf("create: %d %s", code, errOut)
		}
		keys = append(keys, strings.TrimSpace(out))
	}
	code, _, errOut := run(t, "", "approvals", "keys", "create", "--data", dir, "--approver", "alice@example.com")
	if code != exitFail || !strings.Contains(errOut, "already has 2 active keys") || !strings.Contains(errOut, "portcullis approvals keys revoke KEY_ID") {
		t.Errorf("third key: %d %q", code, errOut)
	}
	id0, _ := identity.APIKeyID(keys[0])
	id1, _ := identity.APIKeyID(keys[1])

	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stdout   string // a substring of stdout
		stderr   string // a substring of stderr
		notInOut string
	}{
		{"unknown subcommand", []string{"approvals", "keys", "rotate"}, exitUsage, "", `unknown command "rotate"`, ""},
		{"no subcommand", []string{"approvals", "keys"}, exitUsage, "", "create, list, revoke", ""},
		{"list", []string{"approvals", "keys", "list", "--data", dir}, exitOK, id0, "", ""},
		{"list one approver", []string{"approvals", "keys", "list", "--data", dir, "--approver", "bob"}, exitOK, "APPROVER", "", id0},
		{"agents' store does not hold it", []string{"keys", "revoke", "--data", dir, id0}, exitFail, "", "no key with id", ""},
		{"revoke by id", []string{"approvals", "keys", "revoke", "--data", dir, id0}, exitOK, "revoked " + id0, "", ""},
		{"revoke by the whole key, flags after", []string{"approvals", "keys", "revoke", keys[1], "--data", dir}, exitOK, "revoked " + id1, "", ""},
		{"revoke unknown", []string{"approvals", "keys", "revoke", "--data", dir, "0123456789abcdef"}, exitFail, "", "see 'portcullis approvals keys list'", ""},
		{"revoke without id", []string{"approvals", "keys", "revoke", "--data", dir}, exitUsage, "", "exactly one KEY_ID", ""},
	} {
		code, out, errOut := run(t, "", tc.args...)
		if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderr) || (tc.notInOut != "" && strings.Contains(out, tc.notInOut)) {
			t.Errorf("%s: %d\nstdout: %s\nstderr: %s", tc.name, code, out, errOut)
		}
	}

	code, out, _ := run(t, "", "approvals", "keys", "list", "--data", dir, "--json")
	var rows []struct {
		ID, Status string
		Owner      string `json:"agent_id"` // the key file's field, whoever owns the key
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != exitOK {
		t.Fatalf("list json %q: %v", out, err)
	}
	if len(rows) != 2 || rows[0].Status != "revoked" || rows[1].Status != "revoked" || rows[0].Owner != "alice@example.com" {
		t.Errorf("rows = %+v", rows)
	}
	// Both revoked: a new key may be created.
	if code, _, errOut := run(t, "", "approvals", "keys", "create", "--data", dir, "--approver", "alice@example.com"); code != exitOK {
		t.Errorf("create after revoking: %d %s", code, errOut)
	}
}
