package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/config"
	mcpgw "github.com/portcullis-ai/portcullis/internal/gateway/mcp"
	"github.com/portcullis-ai/portcullis/internal/gateway/mcp/stdioconn"
)

const inventoryUsage = `Usage:
  portcullis inventory [--agent ID] [--prefix NAME__] [--out FILE] -- COMMAND ARGS...
  portcullis inventory [--agent ID] [--prefix NAME__] [--out FILE] --url URL
  portcullis inventory [--agent ID] [--out FILE] --upstream NAME [--config FILE | --data DIR]
      (--upstream "" names a sole unnamed upstream)

Connects to an MCP server, lists its tools with their annotations, ranks them by risk and writes
a starter deny-by-default policy (to --out, default stdout after the table).
`

// runInventory implements `portcullis inventory`: the seed's "start with an inventory".
func runInventory(ctx context.Context, std Stdio, args []string) int {
	fs := flag.NewFlagSet("inventory", flag.ContinueOnError)
	fs.SetOutput(std.Err)
	fs.Usage = func() { fmt.Fprint(fs.Output(), inventoryUsage) }
	agent := fs.String("agent", "my-agent", "agent_id of the starter policy")
	prefix := fs.String("prefix", "", "prefix tool names as the gateway will (e.g. fs__ for an upstream named fs)")
	out := fs.String("out", "", "write the starter policy to this file")
	url := fs.String("url", "", "a Streamable HTTP MCP server instead of a command")
	timeout := fs.Duration("timeout", 60*time.Second, "give up connecting and listing after this")
	upstream := fs.String("upstream", "", "an upstream named in the configuration's mcp: section")
	cfgPath := fs.String("config", "", "configuration file for --upstream (default: <data>/portcullis.yaml)")
	data := fs.String("data", dataDirDefault(), "data directory for --upstream")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	// --upstream "" is a choice too: the sole upstream left unnamed in the configuration.
	upstreamSet := false
	fs.Visit(func(f *flag.Flag) { upstreamSet = upstreamSet || f.Name == "upstream" })
	var t sdk.Transport
	var source string
	if upstreamSet {
		if *url != "" || fs.NArg() > 0 {
			problem(std.Err, "inventory: --upstream takes no --url or command", "")
			return exitUsage
		}
		path := *cfgPath
		if path == "" {
			path = filepath.Join(*data, app.ConfigFile)
		}
		cfg, err := config.Load(path)
		if err != nil {
			return printConfigError(std.Err, err, "pass --config or --data")
		}
		var found *config.MCPUpstream
		at := 0
		for i := range cfg.MCP.Upstreams {
			if cfg.MCP.Upstreams[i].Name == *upstream {
				found, at = &cfg.MCP.Upstreams[i], i
			}
		}
		if found == nil {
			problem(std.Err, fmt.Sprintf("inventory: no upstream %q in %s", *upstream, path), "see the mcp.upstreams section")
			return exitFail
		}
		stderr, _ := std.Err.(*os.File)
		if stderr == nil {
			stderr = os.Stderr
		}
		up, err := app.MCPUpstream(at, *found, stderr, nil)
		if err != nil {
			problem(std.Err, "inventory: "+err.Error(), "")
			return exitFail
		}
		t = up.NewTransport()
		source = fmt.Sprintf("upstream %q of %s", found.Name, path)
		if *prefix == "" && found.Name != "" { // an unnamed upstream's tools keep their names
			*prefix = found.Name + mcpgw.Separator
		}
	}
	switch {
	case t != nil:
	case *url != "" && fs.NArg() == 0:
		t, source = &sdk.StreamableClientTransport{Endpoint: *url, MaxRetries: -1}, *url
	case *url == "" && fs.NArg() > 0:
		cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
		cmd.Stderr = std.Err
		t, source = &stdioconn.Command{Cmd: cmd}, strings.Join(fs.Args(), " ")
	default:
		problem(std.Err, "inventory: want a server command after -- or --url", "portcullis inventory -- npx -y @modelcontextprotocol/server-filesystem /tmp")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "portcullis-inventory", Version: "1"}, nil).Connect(ctx, t, nil)
	if err != nil {
		problem(std.Err, "inventory: connect: "+err.Error(), "check that the server starts on its own")
		return exitFail
	}
	defer cs.Close()
	var tools []*sdk.Tool
	for tl, err := range cs.Tools(ctx, nil) {
		if err != nil {
			problem(std.Err, "inventory: tools/list: "+err.Error(), "")
			return exitFail
		}
		tools = append(tools, tl)
	}
	items := mcpgw.Inventory(tools, *prefix)
	mcpgw.WriteTable(std.Out, items)
	var pol bytes.Buffer
	if err := mcpgw.WritePolicy(&pol, *agent, source, items, time.Now()); err != nil {
		problem(std.Err, "inventory: "+err.Error(), "")
		return exitFail
	}
	if *out == "" {
		fmt.Fprintln(std.Out)
		_, _ = std.Out.Write(pol.Bytes())
		return exitOK
	}
	if err := os.WriteFile(*out, pol.Bytes(), 0o600); err != nil {
		problem(std.Err, "inventory: "+err.Error(), "check --out")
		return exitFail
	}
	fmt.Fprintf(std.Out, "\nwrote a starter policy for %d tools to %s; check it with: portcullis policy check %s\n", len(items), *out, *out)
	return exitOK
}
