package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/policy"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

func init() {
	registerPolicySub("lint", "static analysis: dead, shadowed, allow-all and pointless rules (exit 1 on warnings)", runPolicyLint)
}

// lintJSON is one finding in --format json output (one object per line).
type lintJSON struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Col      int    `json:"col"`
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Agent    string `json:"agent"`
	Rule     string `json:"rule"`
	Message  string `json:"message"`
	Hint     string `json:"hint"`
}

// runPolicyLint loads the policies (exit 2 when they do not load: lint has nothing sound to
// analyse), prints each finding as "file:line:col: CODE severity: message" with a hint line, and
// exits 1 when any finding is at or above --fail-on (default warning), else 0.
func runPolicyLint(_ context.Context, std Stdio, args []string) int {
	fl := flag.NewFlagSet("policy lint", flag.ContinueOnError)
	fl.SetOutput(std.Err)
	failOn := fl.String("fail-on", "warning", "lowest severity that makes lint exit 1: info, warning or error")
	format := fl.String("format", "text", "output format: text, or json (one finding per line)")
	cfgPath := fl.String("config", "", "the gateway configuration the policies run under (its inspection.request_block_level)")
	blockLevel := fl.String("request-block-level", "", "inspection.request_block_level to lint for (none|low|medium|high|critical; default: --config's, else critical)")
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), "Usage: portcullis policy lint [--fail-on info|warning|error] [--format text|json] [--config FILE | --request-block-level LEVEL] PATH...")
		fl.PrintDefaults()
	}
	if code, done := parseCmdFlags(std, fl, args); done {
		return code
	}
	threshold, err := policy.ParseLintSeverity(*failOn)
	if err != nil {
		problem(std.Err, "policy lint: --fail-on: "+err.Error(), "use --fail-on warning (the default)")
		return exitUsage
	}
	if *format != "text" && *format != "json" {
		problem(std.Err, fmt.Sprintf("policy lint: --format: unknown format %q", *format), "use --format text or --format json")
		return exitUsage
	}
	if fl.NArg() == 0 {
		problem(std.Err, "policy lint: no path given", "portcullis policy lint policies/")
		return exitUsage
	}
	opts := policy.DefaultLintOptions
	switch {
	case *blockLevel != "":
		if opts.RequestBlockLevel, err = threat.ParseLevel(*blockLevel); err != nil {
			problem(std.Err, "policy lint: --request-block-level: "+err.Error(), "use one of none, low, medium, high, critical")
			return exitUsage
		}
	case *cfgPath != "":
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			problem(std.Err, "policy lint: "+err.Error(), "pass the gateway's portcullis.yaml, or --request-block-level")
			return exitUsage
		}
		opts.RequestBlockLevel = cfg.RequestBlock()
	}
	set, err := policy.Load(fl.Args()...)
	if err != nil {
		printLoadError(std.Err, err)
		return exitUsage
	}
	findings := policy.LintWith(opts, set.Files()...)
	counts := map[policy.LintSeverity]int{}
	failed := false
	enc := json.NewEncoder(std.Out)
	for _, f := range findings {
		counts[f.Severity]++
		failed = failed || f.Severity >= threshold
		if *format == "json" {
			if err := enc.Encode(lintJSON{File: f.Pos.File, Line: f.Pos.Line, Col: f.Pos.Col, Code: f.Code, Severity: f.Severity.String(),
				Agent: f.Agent, Rule: f.Rule, Message: f.Message, Hint: f.Hint}); err != nil {
				problem(std.Err, "policy lint: write output: "+err.Error(), "")
				return exitUsage
			}
			continue
		}
		problem(std.Out, f.String(), f.Hint)
	}
	if *format == "text" {
		if len(findings) == 0 {
			fmt.Fprintf(std.Out, "ok: no findings (%d files, %d rules)\n", len(set.Files()), set.RuleCount())
		} else {
			fmt.Fprintf(std.Out, "%d findings: %d error, %d warning, %d info\n", len(findings),
				counts[policy.LintError], counts[policy.LintWarning], counts[policy.LintInfo])
		}
	}
	if failed {
		return exitFail
	}
	return exitOK
}
