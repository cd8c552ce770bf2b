// Package cli is the portcullis command line as a library: Main takes the arguments and the
// three standard streams and returns the exit code, so every command is testable in-process.
//
// One file per command. A command prints problems as one line each — "file:line:col: message"
// where a file is involved — followed by a hint line, and exits non-zero.
// The cli is the outermost layer: it may import anything in the module; nothing imports it
// but cmd/portcullis.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/version"
	"github.com/portcullis-ai/portcullis/internal/yamlx"
)

// Stdio carries a command's standard streams.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// command is one top-level subcommand of portcullis.
type command struct {
	summary string
	run     func(ctx context.Context, io Stdio, args []string) int
}

// commands is the table of top-level subcommands. Each entry's implementation lives in its own file.
var commands = map[string]command{
	"version":   {"print the version", runVersion},
	"approvals": {"list, show, approve, deny and watch calls held for human approval", runApprovals},
	"serve":     {"run the gateway (embedded default: SQLite, example policy, demo agent)", runServe},
	"mcp":       {"put an MCP server behind the gateway (stdio wrapper); manage tool pins", runMCP},
	"inventory": {"list an MCP server's tools ranked by risk and write a starter policy", runInventory},
	"policy":    {"check, evaluate, test and lint policies", runPolicy},
	"keys":      {"create, list and revoke agent API keys", runKeys},
	"inspect":   {"inspect tool-call arguments or results (JSONL) for attacks", runInspect},
	"audit":     {"verify, export, prove and search the audit ledger", runAudit},
	"config":    {"validate a gateway configuration file and its policies, creating nothing", runConfig},
}

// Exit codes shared by all commands.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and found a problem (invalid policy, tampered ledger, failing test)
	exitUsage = 2 // the command could not run: bad flags, unreadable input
)

// Main runs the portcullis command line with args (without the program name).
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	std := Stdio{In: stdin, Out: stdout, Err: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		problem(stderr, fmt.Sprintf("unknown command %q", args[0]), "run 'portcullis help' for the list of commands")
		return exitUsage
	}
	return cmd.run(ctx, std, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "portcullis — zero-trust runtime control plane for AI agents")
	fmt.Fprintln(w, "\nUsage: portcullis COMMAND [ARGS]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'portcullis COMMAND -h' for a command's flags.")
}

// problem prints one problem line and, when hint is not empty, a hint line under it.
// Callers put "file:line:col: " at the start of msg when a file is involved.
func problem(w io.Writer, msg, hint string) {
	msg = strings.TrimRight(msg, "\n")
	fmt.Fprintf(w, "%s\n", msg)
	if hint != "" {
		fmt.Fprintf(w, "  hint: %s\n", hint)
	}
}

func runVersion(_ context.Context, std Stdio, _ []string) int {
	fmt.Fprintln(std.Out, version.Get())
	return exitOK
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "help" }

// parseCmdFlags parses a command's flags: -h and --help print its usage to stdout and exit 0; a
// bad flag is a usage error (exit 2). done says the command must return code now.
func parseCmdFlags(std Stdio, fs *flag.FlagSet, args []string) (code int, done bool) {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	defer fs.SetOutput(out)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(std.Out)
		fs.Usage()
		return exitOK, true
	case err != nil:
		problem(std.Err, strings.TrimPrefix(fs.Name(), "portcullis ")+": "+err.Error(), "run 'portcullis "+strings.TrimPrefix(fs.Name(), "portcullis ")+" -h' for its flags")
		return exitUsage, true
	}
	return 0, false
}

// unknownSub reports an unknown subcommand of cmd, with the closest one when it is near.
func unknownSub(w io.Writer, cmd, sub string, subs []string) int {
	hint := "run 'portcullis " + cmd + " -h' for its commands"
	if best := yamlx.Closest(sub, subs); best != "" {
		hint = fmt.Sprintf("did you mean 'portcullis %s %s'?", cmd, best)
	}
	problem(w, fmt.Sprintf("%s: unknown command %q", cmd, sub), hint)
	return exitUsage
}
