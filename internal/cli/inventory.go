package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	mcpgw "github.com/portcullis-ai/portcullis/internal/gateway/mcp"
)

const inventoryUsage = `usage:
  portcullis inventory [--agent ID] [--prefix NAME__] [--out FILE] -- COMMAND ARGS...
  portcullis inventory [--agent ID] [--prefix NAME__] [--out FILE] --url URL

Connects to an MCP server, lists its tools with their annotations, ranks them by risk and writes
a starter deny-by-default policy (to --out, default stdout after the table).
`

// runInventory implements `portcullis inventory`: the seed's "start with an inventory".
func runInventory(ctx context.Context, std Stdio, args []string) int {
	fs := flag.NewFlagSet("inventory", flag.ContinueOnError)
	fs.SetOutput(std.Err)
	fs.Usage = func() { fmt.Fprint(std.Err, inventoryUsage) }
	agent := fs.String("agent", "my-agent", "agent_id of the starter policy")
	prefix := fs.String("prefix", "", "prefix tool names as the gateway will (e.g. fs__ for an upstream named fs)")
	out := fs.String("out", "", "write the starter policy to this file")
	url := fs.String("url", "", "a Streamable HTTP MCP server instead of a command")
	timeout := fs.Duration("timeout", 60*time.Second, "give up connecting and listing after this")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	var t sdk.Transport
	var source string
	switch {
	case *url != "" && fs.NArg() == 0:
		t, source = &sdk.StreamableClientTransport{Endpoint: *url, MaxRetries: -1}, *url
	case *url == "" && fs.NArg() > 0:
		cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
		cmd.Stderr = std.Err
		t, source = &sdk.CommandTransport{Command: cmd}, strings.Join(fs.Args(), " ")
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
