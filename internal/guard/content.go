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
	// Trusted: the operator wrote this text (a system prompt, developer message, instructions).
	// It is not an injection channel, so attack findings do not block it; secrets are still
	// redacted or refused, since the provider receives them all the same.
	Trusted bool
	Text    string
	// RequestID correlates the content with its model call.
	RequestID string
	// Record: write a record even when the text passes. The LLM gateway sets it for a tool result
	// new in this model call (one answering the model's latest turn), so every result the model
	// reads is on the record once — not again with each later turn that repeats the history.
	Record bool
	// Session and UserToken name the session the conversation belongs to: a tool result or
	// document the model is given adds the labels its inspection finds to it (injection:
	// untrusted; personal data or a secret: private).
	Session   string
	UserToken string
}

// ContentDecision says whether the text may go to the model.
type ContentDecision struct {
	Action   ResultAction // pass, redact (Text holds what to send) or block
	Text     string       // for redact: the text with its secrets replaced
	ID       string       // the decision ID of the record, when one was written
	Level    threat.Level
	Findings []inspect.Finding
	Err      error
}

// CheckContent inspects conversation text going to a model. Text at or above the block level is
// blocked, unless it is trusted (operator-authored: attack findings there are the operator quoting
// an attack, not one). Text carrying a secret is redacted — the matched spans replaced, as in a
// tool result — when rp.Redact is set, and blocked otherwise: a credential in a prompt has left
// the building once the provider has it. PII is recorded and passed, unless it reaches the block
// level. Redacted and blocked content is recorded, and passing content when c.Record says it is new
// (every model call repeats the conversation so far; recording each pass would record the same
// text again and again); a failure to record, or a panic, blocks.
func (g *Guard) CheckContent(ctx context.Context, c Content) (cd *ContentDecision) {
	defer func() {
		if p := recover(); p != nil {
			cd = &ContentDecision{Action: ResultBlock, Err: fmt.Errorf("guard: panic: %v", p)}
		}
	}()
	cd = &ContentDecision{Action: ResultBlock}
	rp := g.resultPolicy()
	dir := inspect.Request
	if c.Role == "tool" || c.Role == "document" {
		dir = inspect.Response // third-party text: where indirect prompt injection lives
		c.Trusted = false      // never the operator's, whatever the caller says
	}
	raw, err := json.Marshal(c.Text)
	if err != nil {
		cd.Err = err
		return cd
	}
	res, err := g.inspector.Inspect(ctx, "llm."+c.Role, dir, raw)
	cd.Findings, cd.Level = res.Findings, res.Level
	reason, decision, verb := "", "deny", "blocked"
	// The level that blocks: with redaction on, secrets and PII are replaced rather than weighed
	// (a credential alone is high, and would otherwise block what redaction is there to pass).
	level := res.Level
	if rp.Redact {
		level = inspect.LevelOf(attackFindings(res.Findings))
	}
	var sh *shield
	switch {
	case err != nil:
		reason = "inspection failed: " + err.Error()
	case !c.Trusted && level >= rp.BlockLevel && rp.BlockLevel > 0:
		reason = "content at threat level " + res.Level.String()
	case hasSecret(res.Findings):
		reason = "secret in content"
		if rp.Redact {
			// The secrets (and PII) of this text replaced, or — if that cannot be done — blocked.
			sh = g.shieldFor(ctx, "llm."+c.Role, dir, raw, nil, res.Findings)
			var text string
			if sh.shown != nil && json.Unmarshal(sh.shown, &text) == nil {
				cd.Text, decision, verb = text, string(ResultRedact), "redacted"
			}
		}
	case !c.Record:
		cd.Action = ResultPass
		if lerr := g.addContentLabels(ctx, c, res.Findings, c.RequestID); lerr != nil {
			cd.Action, cd.Err = ResultBlock, lerr
		}
		return cd
	default:
		decision, verb, reason = string(ResultPass), "passed", "inspected"
		if len(res.Findings) > 0 {
			reason = "findings " + strings.Join(findingKinds(res.Findings), ",")
		}
	}
	cd.ID = NewDecisionID()
	// Recorded with the secret cut out, the rest of the text readable — or, when inspection
	// failed, with every flagged value whole.
	secrets := whole(secretsOf(res.Findings))
	if err == nil {
		if sh == nil {
			sh = g.shieldFor(ctx, "llm."+c.Role, dir, raw, nil, res.Findings)
		}
		secrets = sh.secrets
	}
	rec := &ledger.Record{Kind: ledger.KindDecision, Time: g.now(), DecisionID: cd.ID, RequestID: c.RequestID, Source: c.Source,
		Tool: "llm.content." + c.Role, Params: raw, ParamsSize: len(raw), Decision: decision, ThreatLevel: res.Level,
		Findings: ledgerFindings(res.Findings), Reason: "content " + verb + ": " + reason, Secrets: secrets}
	rec.Agent = agentPrincipal(c.Agent)
	if _, lerr := g.appendRecord(ctx, rec); lerr != nil {
		cd.Err = fmt.Errorf("ledger append: %w", lerr)
		cd.Text = ""
		return cd
	}
	switch decision {
	case string(ResultRedact):
		cd.Action = ResultRedact
	case string(ResultPass):
		cd.Action = ResultPass
	}
	if cd.Action != ResultBlock {
		if lerr := g.addContentLabels(ctx, c, res.Findings, cd.ID); lerr != nil {
			cd.Action, cd.Text, cd.Err = ResultBlock, "", lerr
		}
	}
	return cd
}

// addContentLabels adds to c's session what inspection found in a tool result or document the
// model is about to read. An error blocks the content: the model never reads what its session
// cannot remember.
func (g *Guard) addContentLabels(ctx context.Context, c Content, fs []inspect.Finding, source string) error {
	if g.sessions == nil || c.Agent == nil || (c.Role != "tool" && c.Role != "document") {
		return nil
	}
	ls := resultLabels(nil, "", "llm.content."+c.Role, source, fs)
	if len(ls) == 0 {
		return nil
	}
	user := ""
	if c.UserToken != "" {
		u, err := g.auth.User(ctx, c.Agent, c.UserToken, nil)
		if err != nil {
			return fmt.Errorf("session labels: user: %w", err)
		}
		user = userID(u)
	}
	if err := g.sessions.AddSessionLabels(ctx, sessionKey(c.Agent.ID, user, c.Session), ls, g.now()); err != nil {
		return fmt.Errorf("session labels: %w", err)
	}
	return nil
}

// attackFindings are the findings that are not data redaction can replace (secrets, PII).
func attackFindings(fs []inspect.Finding) []inspect.Finding {
	var out []inspect.Finding
	for _, f := range fs {
		if !strings.HasPrefix(f.Kind, "secret.") && !strings.HasPrefix(f.Kind, "pii.") {
			out = append(out, f)
		}
	}
	return out
}

func hasSecret(fs []inspect.Finding) bool {
	for _, f := range fs {
		if strings.HasPrefix(f.Kind, "secret.") {
			return true
		}
	}
	return false
}
