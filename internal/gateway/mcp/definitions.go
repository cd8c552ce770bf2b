package mcp

import (
	"context"
	"log/slog"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
)

// scan lists u's tools and runs each definition through scanning and pinning; agent (nil when
// none asked) is whom the records name.
func (g *Gateway) scan(ctx context.Context, agent *identity.Agent, u *upstream) {
	tools, err := g.upstreamTools(ctx, u, true)
	if err != nil {
		g.log.Warn("upstream tools unavailable", slog.String("upstream", u.name), slog.Any("error", err))
		return
	}
	for _, t := range tools {
		g.definitionOK(ctx, agent, g.qualify(u, t.Name), t)
	}
	g.mu.Lock()
	g.scannedUp[u] = true
	g.mu.Unlock()
}

// usable reports whether a tool's last seen definition passed scanning and pinning; an upstream
// not yet scanned in this process is scanned first.
func (g *Gateway) usable(ctx context.Context, agent *identity.Agent, u *upstream, name string) bool {
	g.mu.Lock()
	done := g.scannedUp[u]
	g.mu.Unlock()
	if !done {
		g.scan(ctx, agent, u)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	ok, seen := g.defOK[name]
	return seen && ok
}

// definitionOK scans and pins one tool definition; false hides and blocks the tool.
func (g *Gateway) definitionOK(ctx context.Context, agent *identity.Agent, name string, t *sdk.Tool) bool {
	ok := g.checkDefinition(ctx, agent, name, t)
	g.mu.Lock()
	g.defOK[name] = ok
	g.mu.Unlock()
	return ok
}

func (g *Gateway) checkDefinition(ctx context.Context, agent *identity.Agent, name string, t *sdk.Tool) bool {
	def, hash, err := Definition(t)
	if err != nil {
		g.log.Warn("tool definition unreadable", slog.String("tool", name), slog.Any("error", err))
		return false
	}
	if rd := g.o.Guard.CheckDefinition(ctx, guard.Definition{Source: "mcp", Tool: name, Data: def}); rd.Action != guard.ResultPass {
		g.mu.Lock()
		seen := g.scanned[hash]
		g.scanned[hash] = true
		g.mu.Unlock()
		if !seen {
			reason := "tool_definition_suspicious"
			if rd.Err != nil {
				reason += ": " + rd.Err.Error()
			}
			g.record(ctx, Caller{Agent: agent}, name, guard.EventDeny, reason, "definition sha256:"+hash, rd)
		}
		return false
	}
	if g.o.Pins == nil {
		return true
	}
	st, err := g.o.Pins.Check(name, hash)
	if err != nil {
		g.log.Error("tool pin store", slog.String("tool", name), slog.Any("error", err))
		return false
	}
	switch st {
	case PinNew:
		g.record(ctx, Caller{Agent: agent}, name, guard.EventLog, "tool_pinned", "definition sha256:"+hash, nil)
	case PinChanged:
		g.record(ctx, Caller{Agent: agent}, name, guard.EventDeny, "tool_definition_changed", "definition sha256:"+hash, nil)
	case PinApproved:
		g.record(ctx, Caller{Agent: agent}, name, guard.EventLog, "tool_pin_approved", "definition sha256:"+hash, nil)
	}
	return st == PinNew || st == PinSame || st == PinApproved
}
