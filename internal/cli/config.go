package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

const configHint = "every key is described in docs/configuration.md"

// runConfig implements `portcullis config check [FILE]`: validate a gateway configuration and the
// policies it names, creating nothing.
func runConfig(ctx context.Context, std Stdio, args []string) int {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprintln(std.Out, "Usage: portcullis config check [--data DIR] [--allow-empty-policy] [FILE]\n\n"+
			"Commands:\n  check    validate a configuration file and the policies it names; create nothing")
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] != "check" {
		return unknownSub(std.Err, "config", args[0], []string{"check"})
	}
	return runConfigCheck(ctx, std, args[1:])
}

func runConfigCheck(_ context.Context, std Stdio, args []string) int {
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(std.Err)
	data := fs.String("data", dataDirDefault(), "data directory whose portcullis.yaml is checked when FILE is not given")
	allowEmpty := fs.Bool("allow-empty-policy", false, "accept policy paths that hold no policy (a gateway that denies every call)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: portcullis config check [--data DIR] [--allow-empty-policy] [FILE]\n\nValidate FILE (default: DIR/portcullis.yaml) and the policies it names; exit 1 on any problem.\n\nFlags:")
		fs.PrintDefaults()
	}
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	if fs.NArg() > 1 {
		problem(std.Err, fmt.Sprintf("config check: unexpected argument %q", fs.Arg(1)), "check one file at a time")
		return exitUsage
	}
	path, _ := configPath(fs.Arg(0), *data)
	cfg, err := config.Load(path)
	if err != nil {
		return printConfigError(std.Err, err, "pass the configuration file to check, or --data")
	}
	sum, err := app.Check(cfg, *allowEmpty)
	if err != nil {
		return printStartCheckError(std.Err, err)
	}
	fmt.Fprintf(std.Out, "ok: %s: %s\n", path, sum)
	return exitOK
}

// printConfigError prints a configuration load error, one problem per line with its hint; hint is
// shown for an error that is not about the file's content (a file that cannot be read).
func printConfigError(w io.Writer, err error, hint string) int {
	var list config.ErrorList
	if !errors.As(err, &list) {
		problem(w, err.Error(), hint)
		return exitFail
	}
	for _, e := range list {
		h := e.Hint
		if h == "" {
			h = configHint
		}
		problem(w, e.Error(), h)
	}
	return exitFail
}

// printStartCheckError prints why app.Check refused a configuration's policies.
func printStartCheckError(w io.Writer, err error) int {
	var list policy.ErrorList
	switch {
	case errors.As(err, &list):
		printLoadError(w, err)
	case errors.Is(err, app.ErrNoPolicy):
		problem(w, err.Error(), "add a policy file to the configured policies (see docs/policy-language.md), or pass --allow-empty-policy to run a gateway that denies everything")
	default:
		problem(w, err.Error(), "the configuration's policies: lists files or directories that must exist")
	}
	return exitFail
}
