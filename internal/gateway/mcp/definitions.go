package mcp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
		// No approval is asked for here: the scan covers tools the agent's policy may hide.
		g.definitionOK(ctx, agent, g.qualify(u, t.Name), t, false)
	}
	g.mu.Lock()
	g.scannedUp[u] = true
	g.mu.Unlock()
}

// usable reports whether a tool's last seen definition passed scanning and pinning; an upstream
// not yet scanned in this process is scanned first. A tool held for an operator is checked
// again, as c's agent, so that one approved since the last list is callable now.
func (g *Gateway) usable(ctx context.Context, c Caller, u *upstream, name string) bool {
	g.mu.Lock()
	done := g.scannedUp[u]
	g.mu.Unlock()
	if !done {
		g.scan(ctx, c.Agent, u)
	}
	g.mu.Lock()
	ok, seen := g.defOK[name]
	t := g.held[name]
	g.mu.Unlock()
	if seen && !ok && t != nil {
		agent, err := g.agent(ctx, c)
		if err != nil {
			return false
		}
		return g.definitionOK(ctx, agent, name, t, true)
	}
	return seen && ok
}

// definitionOK scans and pins one tool definition; false hides and blocks the tool. ask says
// whether a held definition's approval may be asked for in agent's name (the agent is about to
// be shown or to call this tool).
func (g *Gateway) definitionOK(ctx context.Context, agent *identity.Agent, name string, t *sdk.Tool, ask bool) bool {
	ok, held := g.checkDefinition(ctx, agent, name, t, ask)
	g.mu.Lock()
	g.defOK[name] = ok
	if held {
		g.held[name] = t
	} else {
		delete(g.held, name)
	}
	g.mu.Unlock()
	return ok
}

// checkDefinition reports whether the definition t may be used, and whether it is held for an
// operator's approval.
func (g *Gateway) checkDefinition(ctx context.Context, agent *identity.Agent, name string, t *sdk.Tool, ask bool) (ok, held bool) {
	def, hash, err := Definition(t)
	if err != nil {
		g.log.Warn("tool definition unreadable", slog.String("tool", name), slog.Any("error", err))
		return false, false
	}
	data := scanned(t, def)
	rd := g.o.Guard.CheckDefinition(ctx, guard.Definition{Source: "mcp", Tool: name, Data: data})
	if rd.Action == guard.ResultHold {
		ok := g.holdDefinition(ctx, agent, name, data, hash, rd, ask)
		return ok, !ok
	}
	if rd.Action != guard.ResultPass {
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
		return false, false
	}
	if g.o.Pins == nil {
		return true, false
	}
	st, err := g.o.Pins.Check(name, hash)
	if err != nil {
		g.log.Error("tool pin store", slog.String("tool", name), slog.Any("error", err))
		return false, false
	}
	switch st {
	case PinNew:
		g.record(ctx, Caller{Agent: agent}, name, guard.EventLog, "tool_pinned", "definition sha256:"+hash, nil)
	case PinChanged:
		g.record(ctx, Caller{Agent: agent}, name, guard.EventDeny, "tool_definition_changed", "definition sha256:"+hash, nil)
	case PinApproved:
		g.record(ctx, Caller{Agent: agent}, name, guard.EventLog, "tool_pin_approved", "definition sha256:"+hash, nil)
	}
	return st == PinNew || st == PinSame || st == PinApproved, false
}

// holdDefinition decides a definition the guard held: usable once an operator has approved this
// exact definition (its hash), which is then pinned; otherwise the approval request is opened,
// or joined, in the name of the agent that met it, and the tool is neither listed nor callable.
// The hold is recorded when first seen and when its request is opened; a definition met with no
// agent or in a scan (!ask) is held until an agent lists or calls it, which opens the request.
func (g *Gateway) holdDefinition(ctx context.Context, agent *identity.Agent, name string, def []byte, hash string, rd *guard.ResultDecision, ask bool) bool {
	sum := sha256.Sum256(def)
	shown := hex.EncodeToString(sum[:]) // what the approver is shown and approves: def as scanned
	ok, err := g.reviewed(name, hash, shown)
	if err != nil {
		g.log.Error("tool pin store", slog.String("tool", name), slog.Any("error", err))
		return false
	}
	if ok {
		return true
	}
	msg := "definition sha256:" + hash
	var h guard.HeldDefinition
	if agent != nil && ask {
		h, err = g.o.Guard.HoldDefinition(ctx, guard.DefinitionHold{Source: "mcp", Agent: agent, Tool: name, Data: def,
			Digest: "sha256:" + hash, Scan: rd})
		if err != nil {
			g.log.Error("tool definition held, but no approval could be asked", slog.String("tool", name), slog.Any("error", err))
		}
	}
	if h.Approved {
		if err := g.admit(name, hash, shown); err != nil {
			// Not pinned: the grant is spent, so the next list asks again.
			g.log.Error("tool pin store", slog.String("tool", name), slog.Any("error", err))
			return false
		}
		g.record(ctx, Caller{Agent: agent}, name, guard.EventLog, "tool_definition_approved", msg+" approval "+h.ApprovalID, rd)
		return true
	}
	g.mu.Lock()
	seen := g.scanned[hash]
	g.scanned[hash] = true
	g.mu.Unlock()
	if !seen || h.Opened {
		if h.ApprovalID != "" {
			msg += " approval " + h.ApprovalID
		}
		g.record(ctx, Caller{Agent: agent}, name, guard.EventDeny, guard.CodeDefinitionHeld, msg, rd)
	}
	return false
}

// scanned is what of t is inspected, and shown to approvers: the pinned definition, plus a title
// and an output schema when t has them (what a client may show the model beside it). They are
// not in the pin's hash, which predates them: adding them would make every titled tool look
// changed once.
func scanned(t *sdk.Tool, def json.RawMessage) json.RawMessage {
	if t.Title == "" && t.OutputSchema == nil {
		return def
	}
	var m map[string]any
	if json.Unmarshal(def, &m) != nil {
		return def
	}
	if t.Title != "" {
		m["title"] = t.Title
	}
	if t.OutputSchema != nil {
		m["outputSchema"] = t.OutputSchema
	}
	out, err := json.Marshal(m)
	if err != nil {
		return def
	}
	return out
}

// reviewed reports whether an operator approved hash as name's definition, as scanned
// (seen), after it was held.
func (g *Gateway) reviewed(name, hash, seen string) (bool, error) {
	if g.o.Pins != nil {
		return g.o.Pins.Reviewed(name, hash, seen)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.admitted[name] == hash+"/"+seen, nil
}

// admit pins hash as name's definition, approved by an operator as scanned (seen).
func (g *Gateway) admit(name, hash, seen string) error {
	if g.o.Pins != nil {
		return g.o.Pins.Admit(name, hash, seen)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.admitted[name] = hash + "/" + seen
	return nil
}
