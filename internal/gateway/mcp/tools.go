package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/guard"
)

// qualify and split map upstream names to agent-facing names.
func (g *Gateway) qualify(u *upstream, name string) string {
	if u.name == "" {
		return name
	}
	return u.name + Separator + name
}

func (g *Gateway) split(name string) (*upstream, string, bool) {
	if reserved(name) {
		// An upstream tool named like a reserved name would ride on rules written for it.
		return nil, "", false
	}
	if u, ok := g.byKey[""]; ok {
		return u, name, true
	}
	srv, tool, ok := strings.Cut(name, Separator)
	if !ok {
		return nil, "", false
	}
	u, ok := g.byKey[srv]
	if !ok {
		return nil, "", false
	}
	return u, tool, true
}

// reserved reports whether name is one of the reserved tool names.
func reserved(name string) bool {
	switch name {
	case ToolResourcesRead, ToolPromptsGet, ToolSamplingCreateMessage, ToolElicitationCreate, ToolLoggingMessage:
		return true
	}
	return false
}

// upstreamTools lists every tool of u (all pages); wait says whether to wait for another
// request's reconnection of u (a scan before a call must; a listing must not).
func (g *Gateway) upstreamTools(ctx context.Context, u *upstream, wait bool) ([]*sdk.Tool, error) {
	cs, err := g.sessionWait(ctx, u, wait)
	if err != nil {
		return nil, err
	}
	var out []*sdk.Tool
	for t, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("list tools of %q: %w", u.name, err)
		}
		out = append(out, t)
		if len(out) > maxListed {
			return nil, fmt.Errorf("list tools of %q: more than %d tools", u.name, maxListed)
		}
	}
	return out, nil
}

func (g *Gateway) listTools(ctx context.Context, c Caller, r sdk.Request) (*sdk.ListToolsResult, error) {
	a, err := g.agent(ctx, c)
	if err != nil {
		return nil, err
	}
	type offered struct {
		name string
		tool *sdk.Tool
	}
	var all []offered
	var names []string
	for _, u := range g.ups {
		tools, err := g.upstreamTools(ctx, u, false)
		if err != nil {
			g.log.Warn("upstream tools unavailable", slog.String("upstream", u.name), slog.Any("error", err))
			continue
		}
		for _, t := range tools {
			name := g.qualify(u, t.Name)
			if reserved(name) {
				continue
			}
			if req, first := u.tasks.requires(t.Name); req {
				if first {
					g.log.Warn("tool not listed: it requires MCP tasks (execution.taskSupport \"required\"), which the gateway does not proxy", slog.String("tool", name))
				}
				continue
			}
			all = append(all, offered{name, t})
			names = append(names, name)
		}
	}
	// The policy narrows the list in the guard, which records what it hid.
	visible, err := g.o.Guard.VisibleTools(ctx, guard.Listing{Source: "mcp", RequestID: requestID(r), Agent: a, Tools: names})
	if err != nil {
		return nil, fmt.Errorf("mcp: tool list unavailable: %w", err)
	}
	shown := make(map[string]bool, len(visible))
	for _, n := range visible {
		shown[n] = true
	}
	res := &sdk.ListToolsResult{Tools: []*sdk.Tool{}}
	for _, o := range all {
		if !shown[o.name] || !g.definitionOK(ctx, a, o.name, o.tool, true) {
			continue
		}
		c := *o.tool
		c.Name = o.name
		res.Tools = append(res.Tools, &c)
	}
	return res, nil
}

// record writes, through the guard, a decision the gateway made on its own knowledge (a blocked
// definition, an unroutable server request), naming the agent of c when known (the guard
// bounds the tool name and writes on its own bounded context). scanned, when set, is the
// definition scan whose findings the record carries.
func (g *Gateway) record(ctx context.Context, c Caller, tool, decision, reason, msg string, scanned *guard.ResultDecision) {
	e := guard.Event{Source: "mcp", Agent: c.Agent, Tool: tool, Decision: decision, Reason: reason, Message: msg}
	if scanned != nil {
		e.Level, e.Findings = scanned.Level, scanned.Findings
	}
	if err := g.o.Guard.RecordEvent(ctx, e); err != nil {
		g.log.Error("record gateway event", slog.String("tool", guard.RecordedToolName(tool)), slog.String("reason", reason), slog.Any("error", err))
	}
}

// errorResult is a tool result the agent reads as a failure.
func errorResult(msg string) *sdk.CallToolResult {
	return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: msg}}}
}

// decide runs guard.Check, which holds a CONSTRAIN up to ApprovalWait for a human. It returns
// the decision, and the result to answer with when the call may not run.
func (g *Gateway) decide(ctx context.Context, req guard.Request) (*guard.Decision, *sdk.CallToolResult) {
	req.Hold = g.o.ApprovalWait
	d := g.o.Guard.Check(ctx, req)
	switch {
	case d.Allowed():
		return d, nil
	case d.Pending():
		return d, errorResult(pendingMessage(d.ApprovalID))
	case d.ApprovalID != "" && d.Code == "":
		// A retry whose approval is final (already used, denied or expired: the guard denies
		// with the approval ID and no failure code). Saying so tells the agent nothing of the
		// policy — the approval is its own — and ends a retry loop.
		return d, errorResult(finalApprovalMessage(d.ApprovalID))
	default:
		return d, errorResult(msgUnavailable)
	}
}

func finalApprovalMessage(id string) string {
	return fmt.Sprintf("the approval %s cannot be used: it was already used, denied or has expired. Call without %q to ask for a new approval.", id, ApprovalArg)
}

// metaApproval reads a retry's approval ID from _meta (resources/read and prompts/get have no
// arguments object to carry it).
func metaApproval(m sdk.Meta) string {
	id, _ := m[ApprovalArg].(string)
	return id
}

func pendingMessage(id string) string {
	return fmt.Sprintf("the call is waiting for human approval (approval ID %s). Once it is approved, call the tool again with the same arguments plus %q: %q.", id, ApprovalArg, id)
}

func requestID(req sdk.Request) string {
	if s := req.GetSession(); s != nil {
		return s.ID()
	}
	return ""
}

func (g *Gateway) callTool(ctx context.Context, c Caller, r *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
	if r.Params == nil {
		return nil, errors.New("mcp: tools/call without params")
	}
	// The arguments are read once, by the guard: strictly (arguments two readers could read two
	// ways — a repeated key, exactly or up to case; invalid UTF-8 — are refused, since they are
	// forwarded byte for byte and the server might run on the reading the policy did not see),
	// with the approval argument of a retry taken out. Absent and null arguments are {}.
	args := r.Params.Arguments
	if t := bytes.TrimSpace(args); len(t) == 0 || string(t) == "null" {
		args = json.RawMessage("{}")
	}
	name := r.Params.Name
	u, tool, known := g.split(name)

	// Definitions first: a tool whose definition changed or looks poisoned is blocked whatever
	// the policy says, and the call is not even decided. A name that is not a valid tool name
	// goes straight to guard.Check, which refuses it and records it cut — never whole.
	if known && guard.ValidToolName(name) == nil && !g.usable(ctx, c, u, name) {
		g.record(ctx, c, name, guard.EventDeny, "tool_blocked: definition changed or suspicious; call refused until re-approved", "definition sha256:", nil)
		return errorResult(msgUnavailable), nil
	}
	d, answer := g.decide(ctx, guard.Request{RequestID: requestID(r), Source: "mcp", Credentials: c.Credentials, Agent: c.Agent, UserToken: c.UserToken,
		Tool: name, Params: args, ApprovalID: metaApproval(r.Params.Meta), ApprovalArg: ApprovalArg, Session: sessionOf(r)})
	if answer != nil {
		if d.Code == guard.CodeDuplicateKey || d.Code == guard.CodeMalformed {
			// Refused and recorded by the guard; the agent gets invalid params.
			msg := "invalid arguments"
			if d.Err != nil {
				msg += ": " + strings.TrimPrefix(d.Err.Error(), "decode params: ")
			}
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: msg}
		}
		return answer, nil
	}
	args = d.Params
	if !known {
		g.outcome(ctx, d, name, false, "unknown tool", nil)
		return errorResult(msgUnavailable), nil
	}
	cctx, cancel := context.WithTimeout(ctx, g.o.CallTimeout)
	defer cancel()
	start := time.Now()
	var res *sdk.CallToolResult
	cs, err := g.session(ctx, u)
	if err == nil {
		p := &sdk.CallToolParams{Name: tool, Arguments: args}
		if tok := r.Params.GetProgressToken(); tok != nil && r.Session != nil {
			// A token of the gateway's own: agents' tokens may collide on the shared upstream.
			id := fmt.Sprintf("portcullis-%d", g.progressSeq.Add(1))
			g.progress.Store(id, progressSink{ctx: ctx, session: r.Session, token: tok})
			defer g.progress.Delete(id)
			p.SetProgressToken(id)
		}
		defer g.track(ctx, r, u)()
		res, err = retryLost(cctx, g, u, cs, func(cs *sdk.ClientSession) (*sdk.CallToolResult, error) { return cs.CallTool(cctx, p) })
	}
	dur := time.Since(start)
	if err != nil {
		g.log.Warn("upstream call failed", slog.String("tool", name), slog.Any("error", err))
		g.outcomeDur(ctx, d, name, true, false, err.Error(), nil, dur)
		return errorResult(msgFailed), nil
	}
	inspected, blobs := stripBlobs(res)
	raw, err := json.Marshal(inspected)
	if err != nil {
		g.outcomeDur(ctx, d, name, true, false, "unencodable result", nil, dur)
		return errorResult(msgWithheld), nil
	}
	rd := g.outcomeDur(ctx, d, name, true, !res.IsError, "", raw, dur)
	switch rd.Action {
	case guard.ResultPass:
		g.noteLinks(u, res)
		return res, nil
	case guard.ResultRedact:
		var out sdk.CallToolResult
		if err := json.Unmarshal(rd.Result, &out); err != nil || !restoreBlobs(&out, blobs) {
			return errorResult(msgWithheld), nil
		}
		// The [REDACTED:kind] markers show where; the count tells a client that reads _meta
		// without scanning the text that the result is not what the server sent.
		if out.Meta == nil {
			out.Meta = sdk.Meta{}
		}
		out.Meta[metaRedacted] = rd.Redacted
		return &out, nil
	default:
		return errorResult(withheldMessage(rd)), nil
	}
}

// metaRedacted is the _meta key of a redacted result: how many values or spans were replaced.
const metaRedacted = "portcullis/redacted"

// withheldMessage is what the agent is told of a withheld result: only that it was withheld —
// nothing of what inspection found — unless it was withheld for its size, which says nothing of
// its content and tells the operator which setting to raise.
func withheldMessage(rd *guard.ResultDecision) string {
	if rd.Code == guard.CodeResultTooLarge && rd.Err != nil {
		return msgWithheld + ": " + rd.Err.Error() + " (limits.max_outcome_result_bytes)"
	}
	return msgWithheld
}

func (g *Gateway) outcome(ctx context.Context, d *guard.Decision, tool string, ran bool, errMsg string, result json.RawMessage) *guard.ResultDecision {
	return g.outcomeDur(ctx, d, tool, ran, false, errMsg, result, 0)
}

func (g *Gateway) outcomeDur(ctx context.Context, d *guard.Decision, tool string, ran, ok bool, errMsg string, result json.RawMessage, dur time.Duration) *guard.ResultDecision {
	return g.outcomeWith(ctx, d, tool, ran, ok, errMsg, result, dur, false)
}

// outcomeWith reports the outcome of d's call; unredacted forwards its result whole or not at
// all (guard.Outcome.Unredacted).
func (g *Gateway) outcomeWith(ctx context.Context, d *guard.Decision, tool string, ran, ok bool, errMsg string, result json.RawMessage, dur time.Duration, unredacted bool) *guard.ResultDecision {
	return g.o.Guard.CheckResult(context.WithoutCancel(ctx), guard.Outcome{DecisionID: d.ID, Token: d.OutcomeToken, Source: "mcp", Agent: d.Agent, Tool: tool,
		Ran: ran, Success: ok, Error: errMsg, DurationMS: dur.Milliseconds(), Result: result, Unredacted: unredacted})
}
