package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/config"
	mcpgw "github.com/portcullis-ai/portcullis/internal/gateway/mcp"
)

const mcpUsage = `Usage:
  portcullis mcp [--config FILE] [--data DIR] [--name NAME] [--listen ADDR] -- COMMAND ARGS...
  portcullis mcp pins list [--data DIR]
  portcullis mcp pins approve TOOL [--data DIR] [--by NAME]

The first form is the stdio wrapper: an MCP client launches it in place of the server COMMAND.
stdin/stdout carry MCP; logs go to stderr. The agent's API key is read from $PORTCULLIS_API_KEY,
the invoking user's token (optional) from $PORTCULLIS_USER_TOKEN.
With --name, tools are named NAME__TOOL; without, they keep their own names.
`

// runMCP implements `portcullis mcp`.
func runMCP(ctx context.Context, std Stdio, args []string) int {
	if len(args) > 0 && args[0] == "pins" {
		return runMCPPins(std, args[1:])
	}
	fs := flag.NewFlagSet("mcp", flag.ContinueOnError)
	fs.SetOutput(std.Err)
	fs.Usage = func() { fmt.Fprint(fs.Output(), mcpUsage) }
	cfgPath := fs.String("config", "", "configuration file (default: <data>/portcullis.yaml)")
	data := fs.String("data", dataDirDefault(), "data directory")
	name := fs.String("name", "", "namespace the server's tools as NAME__TOOL")
	listen := fs.String("listen", "", "also serve the HTTP API (approvals, decide) on this address, e.g. 127.0.0.1:8080")
	allowEmpty := fs.Bool("allow-empty-policy", false, "start even when the policy paths hold no policy (every call is denied)")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	if fs.NArg() == 0 {
		problem(std.Err, "mcp: no server command", "portcullis mcp -- npx -y @modelcontextprotocol/server-filesystem /some/dir")
		return exitUsage
	}
	tuneGC()
	key := os.Getenv("PORTCULLIS_API_KEY")
	if key == "" {
		problem(std.Err, "mcp: PORTCULLIS_API_KEY is not set", "set it in the MCP client's env for this server (portcullis keys create --agent ID)")
		return exitUsage
	}
	path := *cfgPath
	if path == "" {
		path = filepath.Join(*data, app.ConfigFile)
	}
	cfg, err := config.Load(path)
	if err != nil {
		return printConfigError(std.Err, err, "run 'portcullis serve' once to create a data directory, or pass --config")
	}
	tuneMemory(cfg.Limits.MemoryLimitMiB, cgroupMemoryFiles)
	// The HTTP gateway's upstreams are not started by the stdio wrapper: it wraps one command.
	cfg.MCP.Upstreams = nil
	for _, s := range cfg.Export.Sinks {
		if s.Type == "jsonl" && s.Path == "-" {
			problem(std.Err, fmt.Sprintf("mcp: export sink %q writes to stdout, which is the MCP channel of the stdio wrapper", s.Name), "export to a file instead (path: /var/log/portcullis/records.jsonl)")
			return exitFail
		}
	}
	sum, err := app.Check(cfg, *allowEmpty)
	if err != nil {
		return printStartCheckError(std.Err, err)
	}
	sum.Gateways = []string{"mcp-stdio"}
	stderr, _ := std.Err.(*os.File)
	if stderr == nil {
		stderr = os.Stderr
	}
	log := newLogger(Stdio{Err: stderr}, cfg.Log)
	a, err := app.Open(ctx, cfg, path, log)
	if err != nil {
		problem(stderr, "mcp: "+err.Error(), "the wrapper refuses to start rather than run without a policy or a writable ledger")
		return exitFail
	}
	defer a.Close(context.WithoutCancel(ctx))
	log.Info("gateway loaded", sum.LogAttrs()...)

	// The server gets the environment the MCP client set for it, minus Portcullis' own variables.
	// It is restarted (and its tools re-pinned) if it exits.
	env := os.Environ()
	up := func() sdk.Transport { return app.UpstreamCommand(fs.Arg(0), fs.Args()[1:], env, stderr) }
	gw, err := a.MCPGateway(ctx, []mcpgw.Upstream{{Name: *name, NewTransport: up}})
	if err != nil {
		problem(stderr, "mcp: "+err.Error(), "check that the server command runs on its own")
		return exitFail
	}
	defer gw.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *listen != "" {
		warnAllInterfaces(log, *listen)
		// The HTTP API in the same process, so approvers can decide what this wrapper holds
		// (`portcullis approvals approve` with PORTCULLIS_URL pointing here).
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			problem(stderr, "mcp: "+err.Error(), "choose another --listen address")
			return exitFail
		}
		fmt.Fprintf(stderr, "portcullis listening on http://%s\n", ln.Addr())
		served := make(chan struct{})
		go func() {
			defer close(served)
			if err := a.Serve(ctx, ln); err != nil {
				log.Error("http api", "error", err)
			}
		}()
		defer func() { cancel(); <-served }()
	}
	srv := gw.Server(mcpgw.EnvCredentials(key, os.Getenv("PORTCULLIS_USER_TOKEN")))
	in, _ := stdinFile(std)
	// One JSON-RPC message per line, bounded like an HTTP body: a longer or malformed line is
	// answered with a JSON-RPC error and the session goes on.
	t := mcpgw.NewStdioTransport(in, std.Out, int(cfg.Limits.MaxBodyBytes))
	if err := srv.Run(ctx, t); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
		problem(stderr, "mcp: "+err.Error(), "the MCP client sent something the gateway could not read; see docs/mcp.md")
		return exitFail
	}
	return exitOK
}

func stdinFile(std Stdio) (io.ReadCloser, bool) {
	if f, ok := std.In.(*os.File); ok {
		return f, true
	}
	return io.NopCloser(std.In), false
}

func runMCPPins(std Stdio, args []string) int {
	if len(args) == 0 || isHelp(args[0]) {
		if len(args) == 0 {
			fmt.Fprint(std.Err, mcpUsage)
			return exitUsage
		}
		fmt.Fprint(std.Out, mcpUsage)
		return exitOK
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("mcp pins "+sub, flag.ContinueOnError)
	fs.SetOutput(std.Err)
	data := fs.String("data", dataDirDefault(), "data directory")
	by := fs.String("by", os.Getenv("USER"), "who approves (recorded)")
	// Flags may follow the tool name.
	var pos []string
	for len(args) > 0 {
		if code, done := parseCmdFlags(std, fs, args); done {
			return code
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	pins := mcpgw.OpenPins(filepath.Join(*data, app.PinsFile))
	switch sub {
	case "list":
		list, err := pins.List()
		if err != nil {
			problem(std.Err, "mcp pins list: "+err.Error(), "check --data")
			return exitFail
		}
		fmt.Fprintf(std.Out, "%-40s %-10s %s\n", "TOOL", "STATE", "SHA-256")
		for _, p := range list {
			state, hash := "pinned", p.Hash
			if p.Reviewed != "" {
				state = "reviewed" // held as suspicious, then approved through an approval request
			}
			if p.Pending != "" {
				state, hash = "CHANGED", p.Pending
			}
			fmt.Fprintf(std.Out, "%-40s %-10s %s\n", p.Tool, state, hash)
		}
		return exitOK
	case "approve":
		if len(pos) != 1 {
			problem(std.Err, "mcp pins approve: want one tool name", "see 'portcullis mcp pins list'")
			return exitUsage
		}
		p, err := pins.Approve(pos[0], *by)
		if err != nil {
			problem(std.Err, "mcp pins approve: "+err.Error(), "see 'portcullis mcp pins list' for tools whose definition changed")
			return exitFail
		}
		fmt.Fprintf(std.Out, "approved the new definition of %s (sha256 %s); the gateway records it in the ledger when it next sees the tool\n", pos[0], p.Hash)
		return exitOK
	}
	return unknownSub(std.Err, "mcp pins", sub, []string{"list", "approve"})
}
