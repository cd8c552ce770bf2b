package mcp

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/policy"
)

func ptr[T any](v T) *T { return &v }

func TestRiskOf(t *testing.T) {
	tests := []struct {
		tool *sdk.Tool
		want Risk
	}{
		{&sdk.Tool{Name: "read", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}}, RiskLow},
		{&sdk.Tool{Name: "mkdir", Annotations: &sdk.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(false)}}, RiskMedium},
		{&sdk.Tool{Name: "write", Annotations: &sdk.ToolAnnotations{OpenWorldHint: ptr(false)}}, RiskHigh},
		{&sdk.Tool{Name: "post", Annotations: &sdk.ToolAnnotations{DestructiveHint: ptr(false)}}, RiskHigh},
		{&sdk.Tool{Name: "anything"}, RiskCritical}, // no annotations: the protocol's defaults are the worst case
		{&sdk.Tool{Name: "run_shell", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}}, RiskCritical},
		{&sdk.Tool{Name: "delete-file", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}}, RiskCritical},
		{&sdk.Tool{Name: "runner_status", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}}, RiskLow},
		// Annotations are the server's claims: a read-only claim does not lower what the
		// name, description or schema says.
		{&sdk.Tool{Name: "get-env", Description: "Returns all environment variables.", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}}, RiskHigh},
		{&sdk.Tool{Name: "get-env", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}}, RiskHigh},
		{&sdk.Tool{Name: "printEnv", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}}, RiskHigh},
		{&sdk.Tool{Name: "lookup", Description: "Looks up the API key of a service.", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}}, RiskHigh},
		{&sdk.Tool{Name: "status", Description: "Executes a shell command and returns its output.", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}}, RiskCritical},
		{&sdk.Tool{Name: "inspect", InputSchema: map[string]any{"type": "object", "properties": map[string]any{"command": map[string]any{"type": "string"}}},
			Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}}, RiskCritical},
		{&sdk.Tool{Name: "update_record", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}}, RiskHigh},
		{&sdk.Tool{Name: "read_file", Description: "Reads a file's contents.", InputSchema: map[string]any{"type": "object", "properties": map[string]any{"path": map[string]any{"type": "string"}}},
			Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}}, RiskLow},
		{&sdk.Tool{Name: "list_directory", Description: "Lists the entries of a directory.", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}}, RiskLow},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want.String(), RiskOf(tt.tool).String()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.tool.Name, diff)
		}
	}
}

// compiles checks the starter policy is accepted by the policy compiler and returns it.
func compiles(t *testing.T, src []byte) *policy.Set {
	t.Helper()
	f, err := policy.Parse("starter.yaml", src)
	if err != nil {
		t.Fatalf("starter policy does not parse: %v\n%s", err, src)
	}
	set, err := policy.Compile(f)
	if err != nil {
		t.Fatalf("starter policy does not compile: %v\n%s", err, src)
	}
	return set
}

func TestWritePolicy(t *testing.T) {
	tools := []*sdk.Tool{
		{Name: "read_file", Description: "Reads.\nA file.", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}},
		{Name: "write_file", Annotations: &sdk.ToolAnnotations{OpenWorldHint: ptr(false)}},
		{Name: "exec", Description: "Runs 'anything'"},
		{Name: "odd.name(1)+'x'"},
	}
	items := Inventory(tools, "fs__")
	var got []string
	for _, it := range items {
		got = append(got, it.Risk.String()+" "+it.Name)
	}
	want := []string{"critical fs__exec", "critical fs__odd.name(1)+'x'", "high fs__write_file", "low fs__read_file"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inventory order (-want +got):\n%s", diff)
	}
	var b bytes.Buffer
	if err := WritePolicy(&b, "agent-1", "node server.js", items, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	set := compiles(t, b.Bytes())
	reach := map[string]bool{}
	for _, n := range []string{"fs__read_file", "fs__write_file", "fs__exec", "fs__odd.name(1)+'x'", "fs__other"} {
		reach[n] = set.MayAllow("agent-1", n)
	}
	wantReach := map[string]bool{"fs__read_file": true, "fs__write_file": true, "fs__exec": false, "fs__odd.name(1)+'x'": false, "fs__other": false}
	if diff := cmp.Diff(wantReach, reach); diff != "" {
		t.Errorf("reachability under the starter policy (-want +got):\n%s", diff)
	}
	if !strings.Contains(b.String(), "TODO") {
		t.Error("no TODO for the operator")
	}
}

func FuzzWritePolicy(f *testing.F) {
	for _, s := range []string{"read", "a'b", "x\ny", "(.*)", "\xff", "#comment", "': ["} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, name, desc string) {
		if name == "" || strings.ContainsAny(name, "\x00\r\n") || len(name) > 200 {
			t.Skip()
		}
		items := Inventory([]*sdk.Tool{{Name: name, Description: desc, Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}}}, "")
		var b bytes.Buffer
		if err := WritePolicy(&b, "agent-1", desc, items, time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
		f, err := policy.Parse("starter.yaml", b.Bytes())
		if err != nil {
			t.Fatalf("does not parse: %v\n%s", err, b.Bytes())
		}
		if _, err := policy.Compile(f); err != nil {
			t.Fatalf("does not compile: %v\n%s", err, b.Bytes())
		}
	})
}

// TestPinStoreSharedFile: the gateway and `portcullis mcp pins approve` are two processes on one
// file; each sees the other's writes despite the gateway's read cache.
func TestPinStoreSharedFile(t *testing.T) {
	path := t.TempDir() + "/pins.json"
	gw, cli := OpenPins(path), OpenPins(path)
	for _, step := range []struct {
		hash string
		want PinState
	}{{"a", PinNew}, {"b", PinChanged}} {
		if got, err := gw.Check("t", step.hash); err != nil || got != step.want {
			t.Fatalf("Check(%s) = %v, %v", step.hash, got, err)
		}
	}
	if _, err := cli.Approve("t", "alice"); err != nil {
		t.Fatal(err)
	}
	if got, err := gw.Check("t", "b"); err != nil || got != PinApproved {
		t.Fatalf("after approval by another store: %v, %v", got, err)
	}
	list, err := cli.List()
	if err != nil || len(list) != 1 || list[0].Hash != "b" || list[0].Approved {
		t.Fatalf("list seen by the other store: %+v, %v", list, err)
	}
}
