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
	"slices"
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
var commands map[string]command

// Set in init: help, completion and "did you mean" read the table the commands are in.
func init() { commands = commandTable() }

func commandTable() map[string]command {
	return map[string]command{
		"version":    {"print the version", runVersion},
		"approvals":  {"list, show, approve, deny and watch calls held for human approval", runApprovals},
		"serve":      {"run the gateway (embedded default: SQLite, example policy, demo agent)", runServe},
		"mcp":        {"put an MCP server behind the gateway (stdio wrapper); manage tool pins", runMCP},
		"inventory":  {"list an MCP server's tools ranked by risk and write a starter policy", runInventory},
		"policy":     {"check, evaluate, test and lint policies; replay them over the ledger, suggest one from it", runPolicy},
		"keys":       {"create, list and revoke agent API keys", runKeys},
		"inspect":    {"inspect tool-call arguments or results (JSONL) for attacks", runInspect},
		"audit":      {"verify, export, prove and search the audit ledger", runAudit},
		"compliance": {"evidence reports for the compliance packs (HIPAA, PCI DSS, GDPR, SOC 2, ISO 27001)", runCompliance},
		"completion": {"print a shell completion script: bash, zsh or fish", runCompletion},
		"config":     {"validate a gateway configuration file and its policies, creating nothing", runConfig},
	}
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
	if len(args) == 0 || isHelp(args[0]) {
		if len(args) > 1 && args[0] == "help" {
			// help CMD [SUB]: the command's own help, exit 0.
			if _, ok := commands[args[1]]; !ok {
				return unknownCommand(stderr, args[1])
			}
			return commands[args[1]].run(ctx, std, append(slices.Clone(args[2:]), "-h"))
		}
		usage(stdout)
		return exitOK
	}
	if args[0] == "--version" || args[0] == "-version" {
		return runVersion(ctx, std, nil)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return unknownCommand(stderr, args[0])
	}
	return cmd.run(ctx, std, args[1:])
}

// commandNames are the top-level commands, sorted.
func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func unknownCommand(w io.Writer, name string) int {
	hint := "run 'portcullis help' for the list of commands"
	if best := closeCommand(name, commandNames()); best != "" {
		hint = fmt.Sprintf("did you mean 'portcullis %s'? (run 'portcullis help' for the list)", best)
	}
	problem(w, fmt.Sprintf("unknown command %q", name), hint)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "portcullis — zero-trust runtime control plane for AI agents")
	fmt.Fprintln(w, "\nUsage: portcullis COMMAND [ARGS]\n\nCommands:")
	for _, n := range commandNames() {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'portcullis help COMMAND' or 'portcullis COMMAND -h' for a command's flags; 'portcullis --version' for the version.")
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

func runVersion(_ context.Context, std Stdio, args []string) int {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(std.Out, "Usage: portcullis version\n\nPrint the version, commit, build date and Go version (also: portcullis --version).")
		return exitOK
	}
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
		var b strings.Builder
		fs.SetOutput(&b)
		fs.Usage()
		text := b.String()
		// flag's own default reads "Usage of NAME:"; every command speaks one style.
		if first, rest, _ := strings.Cut(text, "\n"); strings.HasPrefix(first, "Usage of ") {
			text = fmt.Sprintf("Usage: portcullis %s [FLAGS]\n\nFlags:\n%s", strings.TrimPrefix(fs.Name(), "portcullis "), rest)
		}
		io.WriteString(std.Out, text)
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
	if best := closeCommand(sub, subs); best != "" {
		hint = fmt.Sprintf("did you mean 'portcullis %s %s'?", cmd, best)
	}
	problem(w, fmt.Sprintf("%s: unknown command %q", cmd, sub), hint)
	return exitUsage
}

// closeCommand is the command a mistyped name most likely meant: a third of its letters wrong
// at most, or two (servre → serve, tial → tail; rotate is not create).
func closeCommand(name string, names []string) string {
	best := yamlx.Closest(name, names)
	if best == "" || yamlx.EditDistance(name, best) > max(2, len(name)/3) {
		return ""
	}
	return best
}
