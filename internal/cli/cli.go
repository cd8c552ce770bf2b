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
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/version"
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
