package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/yamlx"
)

// DefaultDataDir is where the gateway keeps its data unless --data or PORTCULLIS_DATA say
// otherwise.
const DefaultDataDir = "./portcullis-data"

// LedgerDBFile is the SQLite ledger's file name inside the data directory: the one the gateway writes.
const LedgerDBFile = app.LedgerFile

type auditCmd struct {
	summary string
	run     func(ctx context.Context, std Stdio, args []string) int
}

var auditCommands = map[string]auditCmd{
	"verify":      {"check the whole log: records, links, signed checkpoints, archives (exit 0 intact, 1 tampered, 2 cannot read)", auditVerify},
	"archive":     {"archive the oldest records to files that verify on their own, then prune them from the live log", auditArchive},
	"export":      {"write records as JSON lines, exactly as stored and hashed (resumable with --from-seq)", auditExport},
	"prove":       {"print the inclusion proof of a record against the latest checkpoint", auditProve},
	"consistency": {"print the consistency proof from an older size to the latest checkpoint", auditConsistency},
	"tail":        {"print the last records (-n N); -f follows new ones", auditTail},
	"search":      {"print records matching --agent, --tool, --decision, --kind, --since", auditSearch},
	"hash":        {"print the HMAC of a sensitive value, to search for it without storing it", auditHash},
	"checkpoint":  {"print the latest signed checkpoint (keep it outside the log: --trusted-checkpoint)", auditCheckpoint},
	"pubkey":      {"print the ledger's public keys (note verifier keys, oldest first)", auditPubkey},
	"keygen":      {"create the ledger's signing and hash keys in the data directory", auditKeygen},
}

func runAudit(ctx context.Context, std Stdio, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(std.Out, "Usage: portcullis audit SUBCOMMAND [FLAGS]\n\nSubcommands:")
		for _, n := range []string{"verify", "archive", "export", "prove", "consistency", "tail", "search", "hash", "checkpoint", "pubkey", "keygen"} {
			fmt.Fprintf(std.Out, "  %-12s %s\n", n, auditCommands[n].summary)
		}
		fmt.Fprintf(std.Out, "\nEvery subcommand takes --data DIR (default $PORTCULLIS_DATA or %s) and --config FILE\n(default DIR/%s): a ledger on PostgreSQL is found through the configuration's store section.\n", DefaultDataDir, app.ConfigFile)
		return exitOK
	}
	c, ok := auditCommands[args[0]]
	if !ok {
		return unknownSub(std.Err, "audit", args[0], subcommands()["audit"])
	}
	return c.run(ctx, std, args[1:])
}

// auditLoc is where the ledger is: the gateway's data directory and its configuration.
type auditLoc struct {
	data   string
	config string
	// cfg is the configuration openStore read (the defaults when there is none).
	cfg config.Config
}

// auditFlags is a flag set with the shared --data and --config flags.
func auditFlags(std Stdio, name string) (*flag.FlagSet, *auditLoc) {
	fs := flag.NewFlagSet("portcullis audit "+name, flag.ContinueOnError)
	fs.SetOutput(std.Err)
	def := os.Getenv("PORTCULLIS_DATA")
	if def == "" {
		def = DefaultDataDir
	}
	loc := &auditLoc{}
	fs.StringVar(&loc.data, "data", def, "data directory (env PORTCULLIS_DATA)")
	fs.StringVar(&loc.config, "config", "", "the gateway's configuration, whose store section says where the ledger is (default: <data>/"+app.ConfigFile+" if it exists)")
	return fs, loc
}

// configPath is the gateway's configuration file: --config, else <data>/portcullis.yaml if it
// exists, else "".
func (loc *auditLoc) configPath() string {
	if loc.config != "" {
		return loc.config
	}
	if p := filepath.Join(loc.data, app.ConfigFile); fileExists(p) {
		return p
	}
	return ""
}

// openStore opens the existing ledger the gateway writes — SQLite in the data directory, or
// PostgreSQL when its configuration's store.ledger says so — and names it for messages. It
// never creates one.
func openStore(ctx context.Context, std Stdio, loc *auditLoc) (ledger.Store, string, bool) {
	cfg := config.Default()
	if path := loc.configPath(); path != "" {
		c, err := config.Load(path)
		if err != nil {
			printConfigError(std.Err, err, "the audit commands read the gateway's configuration to find its ledger")
			return nil, "", false
		}
		cfg = *c
	}
	loc.cfg = cfg
	name := filepath.Join(loc.data, LedgerDBFile)
	if cfg.Store.Ledger == config.StorePostgres {
		name = "the PostgreSQL ledger ($" + cfg.Store.Postgres.DSNEnv + ")"
	}
	st, err := app.OpenLedgerStore(ctx, &cfg, loc.data)
	if err != nil {
		problem(std.Err, err.Error(), "point --data (or PORTCULLIS_DATA) at the gateway's data directory, or --config at its configuration")
		return nil, "", false
	}
	return st, name, true
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// multiFlag (a repeatable string flag) is declared in policy.go.

func writeJSON(w io.Writer, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintf(w, "%s\n", b)
}

func auditVerify(ctx context.Context, std Stdio, args []string) int {
	fs, loc := auditFlags(std, "verify")
	pubkey := fs.String("pubkey", "", "file of trusted verifier keys, one a line (default: the data directory's "+ledger.PublicKeysFile+"; an auditor should use their own copy)")
	var trusted multiFlag
	fs.Var(&trusted, "trusted-checkpoint", "a signed checkpoint kept outside the log (repeatable): detects rollback and forks")
	archiveDir := fs.String("archive", "", "directory of the ledger's archives: verify each, and the whole history from them into the live log (default: the configured one, when it holds archives; \"none\": the live log alone)")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	keys, ok := verifyKeys(std, "", *pubkey, loc.data)
	if !ok {
		return exitUsage
	}
	var cps [][]byte
	for _, f := range trusted {
		b, err := os.ReadFile(f)
		if err != nil {
			problem(std.Err, fmt.Sprintf("%s: %v", f, err), "")
			return exitUsage
		}
		cps = append(cps, b)
	}
	st, name, ok := openStore(ctx, std, loc)
	if !ok {
		return exitUsage
	}
	defer st.Close()
	// The cadence the gateway signs at bounds the records verify accepts after the newest
	// checkpoint.
	opts := ledger.VerifyOptions{Keys: keys, Trusted: cps,
		CheckpointInterval: loc.cfg.Ledger.CheckpointInterval, CheckpointRecords: loc.cfg.Ledger.CheckpointRecords}
	if f, ok := std.Err.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		start := time.Now()
		opts.Progress = func(done, total uint64) {
			pct := 100.0
			if total > 0 {
				pct = 100 * float64(done) / float64(total)
			}
			bar := strings.Repeat("#", int(pct/4)) + strings.Repeat(" ", 25-int(pct/4))
			fmt.Fprintf(f, "\rverifying [%s] %5.1f%% %d/%d records (%s)", bar, pct, done, total, time.Since(start).Round(time.Second))
			if done == total {
				fmt.Fprintln(f)
			}
		}
	}
	archives, ok := openArchives(std, loc, *archiveDir)
	if !ok {
		return exitUsage
	}
	if archives != nil {
		rep, err := ledger.VerifyArchived(ctx, archives, st, opts)
		if err != nil {
			problem(std.Err, fmt.Sprintf("%s: %v", name, err), "check the trusted checkpoints and keys belong to this ledger")
			return exitUsage
		}
		writeJSON(std.Out, rep)
		for _, a := range rep.Archives {
			if !a.Report.Intact {
				problem(std.Err, fmt.Sprintf("%s: archive tampered: first bad seq %d: %s", a.Path, *a.Report.FirstBadSeq, a.Report.Reason),
					"do not trust that archive; compare it with a copy kept elsewhere")
			}
		}
		if !rep.Log.Intact {
			at := uint64(0)
			if rep.Log.FirstBadSeq != nil {
				at = *rep.Log.FirstBadSeq
			}
			problem(std.Err, fmt.Sprintf("%s with its archives: tampered: first bad seq %d: %s", name, at, rep.Log.Reason),
				"do not trust records from that seq on; compare with an exported copy or a trusted checkpoint")
		}
		if !rep.Intact {
			return exitFail
		}
		return exitOK
	}
	rep, err := ledger.Verify(ctx, st, opts)
	if err != nil {
		problem(std.Err, fmt.Sprintf("%s: %v", name, err), "check the trusted checkpoints and keys belong to this ledger, or pass --archive")
		return exitUsage
	}
	writeJSON(std.Out, rep)
	if !rep.Intact {
		problem(std.Err, fmt.Sprintf("%s: ledger tampered: first bad seq %d: %s", name, *rep.FirstBadSeq, rep.Reason),
			"do not trust records from that seq on; compare with an exported copy or a trusted checkpoint")
		return exitFail
	}
	return exitOK
}

func auditExport(ctx context.Context, std Stdio, args []string) int {
	fs, loc := auditFlags(std, "export")
	from := fs.Uint64("from-seq", 0, "first seq to export (resume from the last exported seq + 1)")
	format := fs.String("format", "jsonl", "output format: jsonl (each line is a record's stored bytes)")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	if *format != "jsonl" {
		problem(std.Err, fmt.Sprintf("unknown format %q", *format), "only jsonl is supported")
		return exitUsage
	}
	st, _, ok := openStore(ctx, std, loc)
	if !ok {
		return exitUsage
	}
	defer st.Close()
	err := st.Scan(ctx, *from, func(e ledger.Entry) error {
		if _, err := std.Out.Write(e.Data); err != nil {
			return err
		}
		_, err := std.Out.Write([]byte{'\n'})
		return err
	})
	if err != nil {
		problem(std.Err, fmt.Sprintf("export: %v", err), "resume with --from-seq set to the last exported seq + 1")
		return exitUsage
	}
	return exitOK
}

// withSigned opens the ledger at loc and runs fn with its latest signed checkpoint (note and size):
// what the proof commands answer against.
func withSigned(ctx context.Context, std Stdio, loc *auditLoc, fn func(st ledger.Store, note []byte, size uint64) int) int {
	st, _, ok := openStore(ctx, std, loc)
	if !ok {
		return exitUsage
	}
	defer st.Close()
	n, size, ok := latestSigned(ctx, std, st)
	if !ok {
		return exitUsage
	}
	return fn(st, n, size)
}

// latestSigned returns the latest checkpoint's note and size.
func latestSigned(ctx context.Context, std Stdio, st ledger.Store) ([]byte, uint64, bool) {
	cp, ok, err := st.LatestCheckpoint(ctx)
	if err != nil || !ok {
		problem(std.Err, fmt.Sprintf("no signed checkpoint: %v", err), "checkpoints are written every second while records arrive, and at shutdown")
		return nil, 0, false
	}
	return cp.Note, cp.Size, true
}

func auditProve(ctx context.Context, std Stdio, args []string) int {
	fs, loc := auditFlags(std, "prove")
	seq := fs.Int64("seq", -1, "the record to prove")
	archiveDir := fs.String("archive", "", "directory of the ledger's archives, for an archived record (default: the configured one); it is proved against its archive's signed end")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	if *seq < 0 {
		problem(std.Err, "--seq is required", "portcullis audit prove --seq N")
		return exitUsage
	}
	return withSigned(ctx, std, loc, func(st ledger.Store, n []byte, size uint64) int {
		b, err := ledger.LoadBase(ctx, st)
		if err != nil {
			problem(std.Err, fmt.Sprintf("prove: %v", err), "run 'portcullis audit verify'")
			return exitUsage
		}
		if b != nil {
			from, _ := b.Size()
			a, ok := archiveOf(std, loc, from, *archiveDir, uint64(*seq))
			if !ok {
				return exitUsage
			}
			if a != nil {
				end, _, _ := a.LatestCheckpoint(ctx)
				st, n, size = a, end.Note, a.To()
			}
		}
		p, err := ledger.ProveInclusion(ctx, st, uint64(*seq), size)
		if err != nil {
			problem(std.Err, fmt.Sprintf("prove: %v", err), fmt.Sprintf("the latest checkpoint covers seq 0..%d", int64(size)-1))
			return exitUsage
		}
		writeJSON(std.Out, struct {
			ledger.InclusionProof
			Checkpoint string `json:"checkpoint"`
		}{p, string(n)})
		return exitOK
	})
}

func auditConsistency(ctx context.Context, std Stdio, args []string) int {
	fs, loc := auditFlags(std, "consistency")
	old := fs.Int64("old", -1, "the older tree size (from a checkpoint you kept)")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	if *old < 0 {
		problem(std.Err, "--old is required", "portcullis audit consistency --old SIZE")
		return exitUsage
	}
	return withSigned(ctx, std, loc, func(st ledger.Store, n []byte, size uint64) int {
		p, err := ledger.ProveConsistency(ctx, st, uint64(*old), size)
		if err != nil {
			problem(std.Err, fmt.Sprintf("consistency: %v", err), fmt.Sprintf("the latest checkpoint has size %d", size))
			return exitFail
		}
		writeJSON(std.Out, struct {
			ledger.ConsistencyProof
			Checkpoint string `json:"checkpoint"`
		}{p, string(n)})
		return exitOK
	})
}

func auditTail(ctx context.Context, std Stdio, args []string) int {
	fs, loc := auditFlags(std, "tail")
	n := fs.Uint64("n", 10, "how many records")
	follow := fs.Bool("f", false, "keep printing new records until interrupted")
	format := formatFlag(fs)
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	printRec, flush, ok := recordPrinter(std, "audit tail", *format)
	if !ok {
		return exitUsage
	}
	st, _, ok := openStore(ctx, std, loc)
	if !ok {
		return exitUsage
	}
	defer st.Close()
	size, err := st.Size(ctx)
	if err != nil {
		problem(std.Err, fmt.Sprintf("tail: %v", err), "")
		return exitUsage
	}
	from := uint64(0)
	if size > *n {
		from = size - *n
	}
	for {
		err := st.Scan(ctx, from, func(e ledger.Entry) error {
			from = e.Seq + 1
			return printRec(e)
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			if ctx.Err() != nil {
				return exitOK
			}
			problem(std.Err, fmt.Sprintf("tail: %v", err), "")
			return exitUsage
		}
		if !*follow {
			return exitOK
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func auditSearch(ctx context.Context, std Stdio, args []string) int {
	fs, loc := auditFlags(std, "search")
	agent := fs.String("agent", "", "agent id")
	user := fs.String("user", "", "user id")
	tool := fs.String("tool", "", "tool name")
	decision := fs.String("decision", "", "decision: "+strings.Join(searchDecisions, ", ")+" (any case)")
	kind := fs.String("kind", "", "record kind: "+strings.Join(searchKinds(), ", "))
	decisionID := fs.String("decision-id", "", "decision id (all records of one call)")
	value := fs.String("value", "", "an HMAC from 'audit hash' to find in parameters")
	since := fs.String("since", "", "records at or after this time: RFC 3339 or a duration ago (e.g. 1h)")
	format := formatFlag(fs)
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	printRec, flush, ok := recordPrinter(std, "audit search", *format)
	if !ok {
		return exitUsage
	}
	if *decision != "" && !slices.ContainsFunc(searchDecisions, func(d string) bool { return strings.EqualFold(d, *decision) }) {
		problem(std.Err, fmt.Sprintf("audit search: unknown --decision %q", *decision), "one of "+strings.Join(searchDecisions, ", "))
		return exitUsage
	}
	if *kind != "" && !ledger.Kind(*kind).Valid() {
		hint := "one of " + strings.Join(searchKinds(), ", ")
		if best := yamlx.Closest(*kind, searchKinds()); best != "" {
			hint = fmt.Sprintf("did you mean %q? %s", best, hint)
		}
		problem(std.Err, fmt.Sprintf("audit search: unknown --kind %q", *kind), hint)
		return exitUsage
	}
	var after time.Time
	if *since != "" {
		if d, err := time.ParseDuration(*since); err == nil {
			after = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339, *since); err == nil {
			after = t
		} else {
			problem(std.Err, fmt.Sprintf("--since %q is neither RFC 3339 nor a duration", *since), "e.g. --since 2026-11-25T10:00:00Z or --since 30m")
			return exitUsage
		}
	}
	st, _, ok := openStore(ctx, std, loc)
	if !ok {
		return exitUsage
	}
	defer st.Close()
	found := 0
	err := st.Scan(ctx, 0, func(e ledger.Entry) error {
		if *value != "" && !bytes.Contains(e.Data, []byte(*value)) {
			return nil
		}
		r, err := ledger.ParseRecord(e.Data)
		if err != nil {
			return fmt.Errorf("record %d: %w", e.Seq, err)
		}
		switch {
		case *agent != "" && (r.Agent == nil || r.Agent.ID != *agent),
			*user != "" && (r.User == nil || r.User.ID != *user),
			*tool != "" && r.Tool != *tool,
			*decision != "" && !strings.EqualFold(r.Decision, *decision),
			*kind != "" && string(r.Event()) != *kind, // older ledgers' spellings read as today's
			*decisionID != "" && r.DecisionID != *decisionID,
			!after.IsZero() && r.Time.Before(after):
			return nil
		}
		found++
		return printRec(e)
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		problem(std.Err, fmt.Sprintf("search: %v", err), "run 'portcullis audit verify' to check the log")
		return exitUsage
	}
	if found == 0 {
		fmt.Fprintln(std.Err, "no matching records")
	}
	return exitOK
}

func auditHash(_ context.Context, std Stdio, args []string) int {
	fs, loc := auditFlags(std, "hash")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	if fs.NArg() > 1 {
		problem(std.Err, "audit hash takes at most one argument", "pipe the value on stdin: printf %s 'the value' | portcullis audit hash")
		return exitUsage
	}
	var value string
	if fs.NArg() == 0 || fs.Arg(0) == "-" {
		// The secret comes on stdin, so it stays out of the process list and the shell history.
		b, err := io.ReadAll(io.LimitReader(std.In, 1<<20+1))
		if err != nil || len(b) > 1<<20 {
			problem(std.Err, "audit hash: cannot read the value from stdin (at most 1 MiB)", "printf %s 'the value' | portcullis audit hash")
			return exitUsage
		}
		value = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	} else {
		value = fs.Arg(0)
		fmt.Fprintln(std.Err, "warning: a value on the command line is visible in the process list and the shell history; pipe it on stdin instead")
	}
	keys, err := ledger.LoadKeys(loc.data)
	if err != nil {
		problem(std.Err, fmt.Sprintf("%s: %v", loc.data, err), "the hash key is in the data directory ("+ledger.HashKeyFile+")")
		return exitUsage
	}
	fmt.Fprintln(std.Out, ledger.HashValue(keys.HashKey, value))
	return exitOK
}

func auditCheckpoint(ctx context.Context, std Stdio, args []string) int {
	fs, loc := auditFlags(std, "checkpoint")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	return withSigned(ctx, std, loc, func(_ ledger.Store, n []byte, _ uint64) int {
		std.Out.Write(n)
		return exitOK
	})
}

func auditPubkey(_ context.Context, std Stdio, args []string) int {
	fs, loc := auditFlags(std, "pubkey")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	keys, err := ledger.ReadPublicKeys(filepath.Join(loc.data, ledger.PublicKeysFile))
	if err != nil {
		problem(std.Err, err.Error(), "run 'portcullis audit keygen' to create the ledger's keys")
		return exitUsage
	}
	for _, k := range keys {
		fmt.Fprintln(std.Out, k)
	}
	return exitOK
}

func auditKeygen(_ context.Context, std Stdio, args []string) int {
	fs, loc := auditFlags(std, "keygen")
	origin := fs.String("origin", "", "the log's origin (checkpoint first line and key name); default a fresh portcullis.ledger/<random>")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	o := *origin
	if o == "" {
		o = ledger.NewOrigin()
	}
	keys, err := ledger.GenerateKeys(loc.data, o)
	if err != nil {
		problem(std.Err, err.Error(), "keys are created once per ledger; rotate them from the running gateway")
		return exitUsage
	}
	fmt.Fprintln(std.Out, keys.Public[len(keys.Public)-1])
	return exitOK
}

// searchDecisions are the decisions records hold (a call's, then a tool result's: pass, redact,
// block); --decision matches them in any case.
var searchDecisions = []string{"allow", "deny", "constrain", "log", "pass", "redact", "block"}

// searchKinds are the record kinds --kind accepts.
func searchKinds() []string {
	out := make([]string, len(ledger.Kinds))
	for i, k := range ledger.Kinds {
		out[i] = string(k)
	}
	return out
}

// recordPrinter prints ledger records as --format says: a table for a person, or each record's
// exact stored JSON, one per line.
func recordPrinter(std Stdio, cmd, format string) (printRec func(ledger.Entry) error, flush func() error, ok bool) {
	table, ok := tableOutput(std, cmd, format)
	if !ok {
		return nil, nil, false
	}
	if table {
		t := newRecordTable(std.Out)
		return t.row, t.flush, true
	}
	return func(e ledger.Entry) error {
		_, err := fmt.Fprintf(std.Out, "%s\n", e.Data)
		return err
	}, func() error { return nil }, true
}

// openArchives opens the archives verify reads: those in dir ("none": none), else in the
// configured archive directory when it holds any. nil means the live log alone.
func openArchives(std Stdio, loc *auditLoc, dir string) ([]*ledger.Archive, bool) {
	if dir == "none" {
		return nil, true
	}
	explicit := dir != ""
	if !explicit {
		dir = app.ArchiveDir(&loc.cfg, loc.data)
	}
	as, err := ledger.ListArchives(dir)
	if err != nil {
		problem(std.Err, fmt.Sprintf("archives in %s: %v", dir, err), "move aside a file that is not an archive of this ledger, or pass --archive none")
		return nil, false
	}
	if len(as) == 0 {
		if explicit {
			problem(std.Err, fmt.Sprintf("no archives in %s", dir), "pass the directory 'portcullis audit archive' wrote to (ledger.retention.dir)")
			return nil, false
		}
		return nil, true
	}
	return as, true
}

// archiveOf returns the archive holding record seq when the live log, which begins at from,
// no longer does (nil when it does).
func archiveOf(std Stdio, loc *auditLoc, from uint64, dir string, seq uint64) (*ledger.Archive, bool) {
	if seq >= from {
		return nil, true
	}
	if dir == "" {
		dir = app.ArchiveDir(&loc.cfg, loc.data)
	}
	as, err := ledger.ListArchives(dir)
	if err != nil {
		problem(std.Err, fmt.Sprintf("archives in %s: %v", dir, err), "")
		return nil, false
	}
	for _, a := range as {
		if a.From() <= seq && seq < a.To() {
			return a, true
		}
	}
	problem(std.Err, fmt.Sprintf("record %d was archived and no archive in %s holds it", seq, dir), "pass --archive with the directory holding its archive")
	return nil, false
}

func auditArchive(ctx context.Context, std Stdio, args []string) int {
	fs, loc := auditFlags(std, "archive")
	dir := fs.String("dir", "", "where to write the archives (default: ledger.retention.dir, else <data>/archive)")
	maxAge := fs.Duration("max-age", 0, "archive the records older than this (default: ledger.retention.max_age)")
	maxRecords := fs.Uint64("max-records", 0, "keep at most this many records in the live log (default: ledger.retention.max_records)")
	to := fs.Uint64("to", 0, "archive the records before this seq instead (the size of a signed checkpoint)")
	segment := fs.Uint64("segment-records", 0, fmt.Sprintf("records per archive file at most (default: ledger.retention.segment_records, else %d)", ledger.DefaultSegmentRecords))
	dryRun := fs.Bool("dry-run", false, "print where the log would be cut and change nothing")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	// Read the configuration (openStore does) without opening the ledger read-only.
	if st, _, ok := openStore(ctx, std, loc); !ok {
		return exitUsage
	} else {
		st.Close()
	}
	r, opts := app.RetentionOptions(&loc.cfg, nil)
	if *maxAge > 0 {
		r.MaxAge = *maxAge
	}
	if *maxRecords > 0 {
		r.MaxRecords = *maxRecords
	}
	if *segment == 0 {
		*segment = uint64(loc.cfg.Ledger.Retention.SegmentRecords)
	}
	if *dir == "" {
		*dir = app.ArchiveDir(&loc.cfg, loc.data)
	}
	if *to == 0 && r.MaxAge == 0 && r.MaxRecords == 0 {
		problem(std.Err, "nothing says what to archive", "pass --max-age, --max-records or --to, or set ledger.retention in the configuration")
		return exitUsage
	}
	keys, err := ledger.ReadPublicKeys(filepath.Join(loc.data, ledger.PublicKeysFile))
	if err != nil || len(keys) == 0 {
		problem(std.Err, fmt.Sprintf("cannot read the ledger's public keys: %v", err), "each archive is verified with them before anything is pruned")
		return exitUsage
	}
	opts.Keys = keys
	st, err := app.OpenLedgerStoreForArchive(ctx, &loc.cfg, loc.data)
	if err != nil {
		problem(std.Err, err.Error(), "a running gateway archives by itself: set ledger.retention in its configuration")
		return exitUsage
	}
	defer st.Close()
	cut := *to
	if cut == 0 {
		if cut, err = ledger.PlanArchive(ctx, st, r, time.Now(), math.MaxUint64); err != nil {
			problem(std.Err, fmt.Sprintf("archive: %v", err), "")
			return exitUsage
		}
	}
	if *dryRun || cut == 0 {
		writeJSON(std.Out, struct {
			To     uint64 `json:"to"`
			DryRun bool   `json:"dry_run"`
		}{cut, *dryRun})
		return exitOK
	}
	res, err := ledger.ApplyRetention(ctx, st, *dir, r, cut, *segment, time.Now(), opts)
	writeJSON(std.Out, struct {
		Archived []ledger.ArchiveResult `json:"archived"`
	}{res})
	if errors.Is(err, ledger.ErrArchiveBusy) {
		problem(std.Err, fmt.Sprintf("archive: %v; nothing was archived", err), "one archiver at a time per ledger: a gateway's ledger.retention or another 'audit archive' is at work; run it again when it is done")
		return exitFail
	}
	if err != nil {
		problem(std.Err, fmt.Sprintf("archive: %v", err), "run it again: an archive written but not pruned is verified and pruned then")
		return exitFail
	}
	return exitOK
}

// verifyKeys reads the public keys a verification trusts: the file pubkey names, or the one
// beside the log in data (saying so: keys read from beside the log prove only that the log
// matches them, since whoever can rewrite the log can rewrite that file too). ok is false after
// a problem was printed (prefix names the command in it).
func verifyKeys(std Stdio, prefix, pubkey, data string) (keys []string, ok bool) {
	keyFile := pubkey
	if keyFile == "" {
		keyFile = filepath.Join(data, ledger.PublicKeysFile)
		fmt.Fprintf(std.Err, "note: trusting the public keys in %s; an auditor passes --pubkey with their own copy\n", keyFile)
	}
	keys, err := ledger.ReadPublicKeys(keyFile)
	if err != nil || len(keys) == 0 {
		problem(std.Err, fmt.Sprintf("%s%s: cannot read public keys: %v", prefix, keyFile, err), "pass --pubkey with the output of 'portcullis audit pubkey'")
		return nil, false
	}
	return keys, true
}
