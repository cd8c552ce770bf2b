package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Notice is untrusted text relayed to an agent outside any decided call: an MCP server's log
// line (notifications/message). Like a tool's result it may carry a secret or injected
// instructions, so it is inspected the same way; unlike a result it has no decision to be
// recorded under, and a server may send one every few milliseconds.
type Notice struct {
	Source string
	// Agent is who the notice is for; when nil, Credentials are verified, and only when a
	// record is written.
	Agent       *identity.Agent
	Credentials identity.Credentials
	// Tool names the notice's kind to the inspection and in the ledger ("mcp.logging.message").
	Tool      string
	RequestID string
	// Data is the notice as JSON (an object); Message says where it came from ("upstream fs").
	Data    json.RawMessage
	Message string
}

// CheckNotice inspects a notice in the response direction and decides pass, redact or block
// under the same result policy as tool results: block at or above the block level, else replace
// secrets and PII when redaction is on. Only a redacted or blocked notice is recorded (a decision
// record: allow or deny, the reason saying which); recording every passing line would fill the
// ledger with a chatty server's debug output. Any failure — inspecting, redacting, recording a
// redaction, a panic — blocks.
func (g *Guard) CheckNotice(ctx context.Context, n Notice) (rd *ResultDecision) {
	rd = &ResultDecision{Action: ResultBlock}
	rp := g.resultPolicy()
	defer func() {
		if p := recover(); p != nil {
			rd = &ResultDecision{Action: ResultBlock, Code: CodeInternal, Err: fmt.Errorf("guard: panic: %v", p)}
		}
	}()
	res, err := g.inspector.Inspect(ctx, n.Tool, inspect.Response, n.Data)
	rd.Level, rd.Findings = res.Level, res.Findings
	secrets := whole(secretsOf(res.Findings))
	decision, reason := "deny", ""
	switch {
	case err != nil:
		rd.Code, rd.Err = CodeInspection, fmt.Errorf("inspect notice: %w", err)
		reason = "notice withheld: inspection failed: " + err.Error()
	case res.Level >= rp.BlockLevel && rp.BlockLevel > threat.None:
		rd.Code = CodeResultBlocked
		reason = "notice withheld: threat level " + res.Level.String()
	case rp.Redact && len(secrets) > 0:
		sh := g.shieldFor(ctx, n.Tool, inspect.Response, n.Data, nil, res.Findings)
		secrets = sh.secrets
		if sh.shown == nil {
			rd.Code, rd.Err = CodeInspection, fmt.Errorf("redact notice: %w", ledger.ErrNotRedactable)
			reason = "notice withheld: unredactable"
			break
		}
		rd.Action, rd.Result = ResultRedact, sh.shown
		decision, reason = "allow", "notice redacted: "+strings.Join(findingKinds(res.Findings), ",")
	default:
		rd.Action, rd.Result = ResultPass, n.Data
		return rd
	}
	rec := &ledger.Record{Kind: ledger.KindDecision, Time: g.now(), DecisionID: NewDecisionID(), RequestID: n.RequestID, Source: n.Source,
		Tool: n.Tool, Params: n.Data, ParamsSize: len(n.Data), Decision: decision, Reason: reason, ThreatLevel: res.Level,
		Findings: ledgerFindings(res.Findings), Message: n.Message, Secrets: secrets}
	agent := n.Agent
	if agent == nil {
		// Who it was for is worth recording, not worth refusing over: the notice is withheld or
		// redacted either way.
		agent, _ = g.auth.Verify(ctx, n.Credentials)
	}
	rec.Agent = agentPrincipal(agent)
	seq, lerr := g.appendRecord(ctx, rec)
	if lerr != nil {
		rd.Action, rd.Result = ResultBlock, nil
		if rd.Code == "" {
			rd.Code = CodeLedger
		}
		rd.Err = errors.Join(rd.Err, fmt.Errorf("ledger append: %w", lerr))
		return rd
	}
	rd.Seq = seq
	return rd
}
