package stdioconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// DefaultTerminateDuration is how long Close waits for a child by default, as the SDK's
// CommandTransport does.
const DefaultTerminateDuration = 5 * time.Second

// Command is an sdk.Transport that runs a command and speaks MCP over its stdin and stdout. The
// caller sets the command's environment, stderr and process attributes.
type Command struct {
	Cmd *exec.Cmd
	// TerminateDuration is how long Close waits for the process to exit after closing its
	// stdin, and again after SIGTERM, before it kills it; 0 means DefaultTerminateDuration.
	TerminateDuration time.Duration
	Options
}

var _ sdk.Transport = (*Command)(nil)

// Connect starts the command.
func (t *Command) Connect(context.Context) (sdk.Connection, error) {
	stdout, err := t.Cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := t.Cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := t.Cmd.Start(); err != nil {
		return nil, err
	}
	td := t.TerminateDuration
	if td <= 0 {
		td = DefaultTerminateDuration
	}
	return New(stdout, stdin, &process{cmd: t.Cmd, stdin: stdin, grace: td}, t.Options), nil
}

// process ends a child the way the MCP specification asks a stdio client to: close its stdin,
// wait, SIGTERM, wait, SIGKILL.
type process struct {
	cmd   *exec.Cmd
	stdin io.Closer
	grace time.Duration
}

var errUnresponsive = errors.New("subprocess did not exit after SIGKILL")

func (p *process) Close() error {
	if err := p.stdin.Close(); err != nil {
		return fmt.Errorf("closing stdin: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	wait := func() (error, bool) {
		t := time.NewTimer(p.grace)
		defer t.Stop()
		select {
		case err := <-exited:
			return err, true
		case <-t.C:
			return nil, false
		}
	}
	if err, ok := wait(); ok {
		return err
	}
	// If SIGTERM cannot be sent, go straight to SIGKILL.
	if p.cmd.Process.Signal(syscall.SIGTERM) == nil {
		if err, ok := wait(); ok {
			return err
		}
	}
	if err := p.cmd.Process.Kill(); err != nil {
		return err
	}
	if err, ok := wait(); ok {
		return err
	}
	return errUnresponsive
}
