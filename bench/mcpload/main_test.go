package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMCPLoadRuns runs the tool briefly on every mode and workload — a few hundred calls per path
// — so that it cannot rot: every path answers every call with the echoed text, the gateway
// processes really are on the gateway paths (they spend CPU; the direct paths have none), and the
// report has a row for each workload.
func TestMCPLoadRuns(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH: cannot build portcullis and the echo server")
	}
	dir := t.TempDir()
	bin, err := build(dir, "github.com/portcullis-ai/portcullis/cmd/portcullis")
	if err != nil {
		t.Skipf("cannot build the portcullis binary: %v", err)
	}
	echo, err := build(dir, "github.com/portcullis-ai/portcullis/bench/mcpload/echo")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rows, err := run(context.Background(), config{
		bin: bin, echo: echo, data: t.TempDir(),
		duration: 250 * time.Millisecond, warmup: 50 * time.Millisecond, rounds: 1,
		clients: 8, rate: 200,
		modes: []string{"stdio", "http", "http-http"}, loads: []string{"1", "paced", "closed"},
		envs: envList{"", "GOGC=800"}, out: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	// stdio: one workload; http and http-http: three each; two gateway variants apiece.
	if len(rows) != 2*7 {
		t.Fatalf("%d rows, want 14:\n%s", len(rows), out.String())
	}
	var gatewayCPU, directCPU time.Duration
	for _, r := range rows {
		name := r.work.label() + ", " + envLabel(r.env)
		for path, res := range map[string]result{"direct": r.direct, "gateway": r.gateway} {
			// This checks the harness, not the speed: one closed-loop client on a busy two-core
			// machine may finish only a few calls in 0.25 s, so any count that yields a p50 and
			// a p99 will do.
			if res.calls < 2 || res.errors != 0 {
				t.Errorf("%s, %s: %d calls, %d errors", name, path, res.calls, res.errors)
			}
			if res.p50 <= 0 || res.p99 < res.p50 {
				t.Errorf("%s, %s: p50 %v, p99 %v", name, path, res.p50, res.p99)
			}
		}
		if r.work.rate > 0 {
			// Paced: 8 clients at 200 calls/s for 0.25 s is 50 calls, however fast the path.
			if n := r.gateway.calls; n < 45 || n > 55 {
				t.Errorf("%s: %d paced calls, want ≈ 50", name, n)
			}
		}
		gatewayCPU += r.gateway.gatewayCPU
		directCPU += r.direct.gatewayCPU
	}
	if gatewayCPU <= 0 || directCPU != 0 {
		t.Errorf("gateway CPU: %v on the gateway paths, %v on the direct ones", gatewayCPU, directCPU)
	}
	for _, want := range []string{"| stdio wrapper | 1 | closed loop | default |", "| serve /mcp, stdio upstream | 8 | paced 200/s | GOGC=800 |", "| serve /mcp, HTTP upstream | 8 | closed loop | default |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestPacedRate(t *testing.T) {
	for _, c := range []struct {
		load string
		want float64
		ok   bool
	}{{"paced", 1000, true}, {"paced=250", 250, true}, {"paced=0", 0, false}, {"paced=x", 0, false}, {"closed", 0, false}, {"pacedx", 0, false}} {
		if got, ok := pacedRate(c.load, 1000); got != c.want || ok != c.ok {
			t.Errorf("pacedRate(%q) = %v, %v; want %v, %v", c.load, got, ok, c.want, c.ok)
		}
	}
}
