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
		{[]string{"keys", "rotate"}, exitUsage, `keys: unknown subcommand "rotate"`},
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
