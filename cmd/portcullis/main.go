// Command portcullis is the zero-trust runtime control plane for AI agents.
// Everything lives in internal/cli so that the command line is testable as a library.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/portcullis-ai/portcullis/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
