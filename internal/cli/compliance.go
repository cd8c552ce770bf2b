package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portcullis-ai/portcullis/internal/compliance"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

func runCompliance(ctx context.Context, std Stdio, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(std.Out, "Usage: portcullis compliance report --pack P [--since 90d] [--until T] [--format html|json] [--out FILE]\n\nSubcommands:\n  report       the evidence for a pack's controls over a period, from the ledger (read-only)")
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] != "report" {
		return unknownSub(std.Err, "compliance", args[0], subcommands()["compliance"])
	}
	return complianceReport(ctx, std, args[1:])
}

func complianceReport(ctx context.Context, std Stdio, args []string) int {
	fs, loc := auditFlags(std, "report")
	fs.Init("portcullis compliance report", fs.ErrorHandling())
	pack := fs.String("pack", "", "the framework: hipaa, pci-dss, gdpr, soc2 or iso27001")
	since := fs.String("since", "90d", "the period's start: RFC 3339 or an age (90d, 12h)")
	until := fs.String("until", "", "the period's end (default: now): RFC 3339 or an age")
	format := fs.String("format", "html", "html (printable, self-contained) or json")
	out := fs.String("out", "", "write the report to FILE (default: standard output)")
	pubkey := fs.String("pubkey", "", "file of trusted verifier keys, one a line (default: the data directory's "+ledger.PublicKeysFile+")")
	archiveDir := fs.String("archive", "", "directory of the ledger's archives: verify them with the live log and count their records of the period (default: the configured one, when it holds archives; \"none\": the live log alone)")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	mapping, err := compliance.Mapping()
	if err != nil {
		problem(std.Err, "compliance report: "+err.Error(), "")
		return exitUsage
	}
	names := make([]string, 0, len(mapping))
	for n := range mapping {
		names = append(names, n)
	}
	sort.Strings(names)
	f := mapping[*pack]
	if f == nil {
		problem(std.Err, fmt.Sprintf("compliance report: unknown pack %q", *pack), "--pack is one of "+strings.Join(names, ", "))
		return exitUsage
	}
	if !slices.Contains([]string{"html", "json"}, *format) {
		problem(std.Err, fmt.Sprintf("compliance report: unknown format %q", *format), "--format html or --format json")
		return exitUsage
	}
	now := time.Now()
	from, to := time.Time{}, now
	if *since != "" {
		if from, err = parseReplayTime(*since, now); err != nil {
			problem(std.Err, "compliance report: --since: "+err.Error(), "e.g. --since 90d")
			return exitUsage
		}
	}
	if *until != "" {
		if to, err = parseReplayTime(*until, now); err != nil {
			problem(std.Err, "compliance report: --until: "+err.Error(), "e.g. --until 2026-12-01T00:00:00Z")
			return exitUsage
		}
	}
	if !from.Before(to) {
		problem(std.Err, "compliance report: the period is empty (--since is not before --until)", "")
		return exitUsage
	}
	keys, ok := verifyKeys(std, "compliance report: ", *pubkey, loc.data)
	if !ok {
		return exitUsage
	}
	st, name, ok := openStore(ctx, std, loc)
	if !ok {
		return exitUsage
	}
	defer st.Close()
	archives, ok := openArchives(std, loc, *archiveDir)
	if !ok {
		return exitUsage
	}
	// The report is evidence only if the log it counts is the log its checkpoints sign:
	// verify first, with the same options as 'audit verify', and put the outcome in the report.
	opts := ledger.VerifyOptions{Keys: keys,
		CheckpointInterval: loc.cfg.Ledger.CheckpointInterval, CheckpointRecords: loc.cfg.Ledger.CheckpointRecords}
	var ver ledger.Report
	if archives != nil {
		ar, err := ledger.VerifyArchived(ctx, archives, st, opts)
		if err != nil {
			problem(std.Err, fmt.Sprintf("compliance report: %s with its archives: %v", name, err), "check the keys belong to this ledger, or pass --archive none")
			return exitUsage
		}
		ver = ar.Log
		for _, a := range ar.Archives {
			if !a.Report.Intact && ver.Intact {
				ver = a.Report // the first archive that does not verify is what the report shows
				ver.Reason = a.Path + ": " + ver.Reason
			}
		}
	} else if ver, err = ledger.Verify(ctx, st, opts); err != nil {
		problem(std.Err, fmt.Sprintf("compliance report: %s: %v", name, err), "check the keys belong to this ledger")
		return exitUsage
	}
	c := compliance.NewCollector(f, from, to)
	next := uint64(0) // the archives end where the live log begins; never count a record twice
	add := func(e ledger.Entry) error {
		if e.Seq < next {
			return nil
		}
		next = e.Seq + 1
		r, err := parseReplayRecord(e.Data)
		if err != nil {
			return fmt.Errorf("record %d: %w", e.Seq, err)
		}
		c.Add(r)
		return nil
	}
	for _, a := range archives {
		if err := a.Scan(ctx, 0, add); err != nil {
			problem(std.Err, "compliance report: "+err.Error(), "run 'portcullis audit verify' to check the archives")
			return exitUsage
		}
	}
	if n := len(archives); n > 0 {
		c.Archives(n, archives[n-1].To())
	}
	if err := st.Scan(ctx, next, add); err != nil {
		problem(std.Err, "compliance report: "+err.Error(), "run 'portcullis audit verify' to check the log")
		return exitUsage
	}
	rep := c.Finish(ver, now)
	var buf bytes.Buffer
	if *format == "json" {
		writeJSON(&buf, rep)
	} else if err := compliance.WriteHTML(&buf, rep); err != nil {
		problem(std.Err, "compliance report: "+err.Error(), "")
		return exitUsage
	}
	if *out == "" {
		w := bufio.NewWriter(std.Out)
		w.Write(buf.Bytes())
		w.Flush()
	} else if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		problem(std.Err, "compliance report: "+err.Error(), "")
		return exitUsage
	}
	if !ver.Intact {
		problem(std.Err, fmt.Sprintf("compliance report: %s does not verify: %s (%s); the report says so", name, ver.Problem, ver.Reason),
			"do not file a report over a log that does not verify; run 'portcullis audit verify'")
		return exitFail
	}
	return exitOK
}
