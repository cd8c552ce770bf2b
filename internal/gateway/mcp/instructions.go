package mcp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/guard"
)

// maxInstructions bounds one upstream's instructions; longer ones are left out, not cut (a cut
// could end mid-sentence and change what the rest means).
const maxInstructions = 16 << 10

// instructions are the upstreams' initialize instructions for an agent's initialize result,
// each under a heading naming its upstream and the prefix its tools carry (a sole unnamed
// upstream's are passed as they are). They are text the agent's model reads, like a tool's
// description: each is scanned like a definition, and one that is too long, or that the scan
// flags, is left out (recorded once, and logged).
func (g *Gateway) instructions(ctx context.Context) string {
	var parts []string
	for _, u := range g.ups {
		ir := u.initResult()
		if ir == nil || strings.TrimSpace(ir.Instructions) == "" {
			continue
		}
		text := ir.Instructions
		if !g.instructionsOK(ctx, u, text) {
			continue
		}
		if u.name == "" {
			parts = append(parts, text)
			continue
		}
		parts = append(parts, fmt.Sprintf("## Instructions of upstream %q (its tools and prompts are named %s%s<name>)\n\n%s", u.name, u.name, Separator, text))
	}
	return strings.Join(parts, "\n\n")
}

// instructionTool is the name blocked upstream instructions are recorded under.
const instructionTool = "mcp.instructions"

func (g *Gateway) instructionsOK(ctx context.Context, u *upstream, text string) bool {
	sum := sha256.Sum256([]byte(u.name + "\x00" + text))
	key := hex.EncodeToString(sum[:])
	g.mu.Lock()
	ok, seen := g.instrOK[key]
	g.mu.Unlock()
	if seen {
		return ok
	}
	var rd *guard.ResultDecision
	reason := "upstream_instructions_too_long"
	if len(text) <= maxInstructions {
		data, _ := json.Marshal(map[string]string{"server": u.name, "instructions": text})
		rd = g.o.Guard.CheckDefinition(ctx, guard.Definition{Source: "mcp", Tool: instructionTool, Data: data})
		ok = rd.Action == guard.ResultPass
		reason = "upstream_instructions_suspicious"
		if rd.Err != nil {
			reason += ": " + rd.Err.Error()
		}
	}
	g.mu.Lock()
	g.instrOK[key] = ok
	g.mu.Unlock()
	if !ok {
		g.log.Warn("upstream instructions left out of initialize", slog.String("upstream", u.name), slog.String("reason", reason), slog.Int("bytes", len(text)))
		g.record(ctx, Caller{}, instructionTool, guard.EventDeny, reason+": upstream "+u.name, "instructions sha256:"+key, rd)
	}
	return ok
}
