package guard

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Content is conversation text on its way to a model (the LLM gateway): a tool's result that an
// agent sends back, or a user's or system's message.
type Content struct {
	Source string
	Agent  *identity.Agent
	// Role is "tool" for a tool result and "document" for a document or search result the
	// conversation attaches (both inspected as results: indirect prompt injection lives there),
	// otherwise the message's role.
	Role string
	Text string
	// RequestID correlates the content with its model call.
	RequestID string
}

// ContentDecision says whether the text may go to the model.
type ContentDecision struct {
	Action   ResultAction // pass or block (text is not redacted piecemeal: see CheckContent)
	ID       string       // the decision ID of the record, when one was written
	Level    threat.Level
	Findings []inspect.Finding
	Err      error
}

// CheckContent inspects conversation text going to a model. Text at or above the block level is
// blocked; so is text carrying a secret — a credential in a prompt has left the building once the
// provider has it, and replacing it inside prose cannot be done reliably. PII is recorded and
// passed, unless it reaches the block level. Only blocked content is recorded (every model call
// repeats the conversation so far; recording each pass would record the same text again and
// again); a failure to record blocks as well.
func (g *Guard) CheckContent(ctx context.Context, c Content, rp ResultPolicy) (cd *ContentDecision) {
	cd = &ContentDecision{Action: ResultBlock}
	dir := inspect.Request
	if c.Role == "tool" || c.Role == "document" {
		dir = inspect.Response // third-party text: where indirect prompt injection lives
	}
	raw, err := json.Marshal(c.Text)
	if err != nil {
		cd.Err = err
		return cd
	}
	res, err := g.inspector.Inspect(ctx, "llm."+c.Role, dir, raw)
	cd.Findings, cd.Level = res.Findings, res.Level
	reason := ""
	switch {
	case err != nil:
		reason = "inspection failed: " + err.Error()
	case res.Level >= rp.BlockLevel && rp.BlockLevel > 0:
		reason = "content at threat level " + res.Level.String()
	case hasSecret(res.Findings):
		reason = "secret in content"
	default:
		cd.Action = ResultPass
		return cd
	}
	cd.ID = NewDecisionID()
	// Recorded with the secret cut out, the rest of the text readable — or, when inspection
	// failed, with every flagged value whole.
	secrets := whole(secretsOf(res.Findings))
	if err == nil {
		secrets = g.shieldFor(ctx, "llm."+c.Role, dir, raw, res.Findings).secrets
	}
	rec := &ledger.Record{Kind: ledger.KindDecision, Time: g.now(), DecisionID: cd.ID, RequestID: c.RequestID, Source: c.Source,
		Tool: "llm.content." + c.Role, Params: raw, ParamsSize: len(raw), Decision: "deny", ThreatLevel: res.Level,
		Findings: ledgerFindings(res.Findings), Reason: "content blocked: " + reason, Secrets: secrets}
	if c.Agent != nil {
		rec.Agent = &ledger.Principal{ID: c.Agent.ID, Verified: true, Method: string(c.Agent.Method)}
	}
	if _, lerr := g.appendRecord(ctx, rec); lerr != nil {
		cd.Err = fmt.Errorf("ledger append: %w", lerr)
	}
	return cd
}

func hasSecret(fs []inspect.Finding) bool {
	for _, f := range fs {
		if strings.HasPrefix(f.Kind, "secret.") {
			return true
		}
	}
	return false
}
