package llm

import (
	"fmt"
	"net/http"
	"strings"
)

// decision is the outcome for one tool call: keep it, or replace it with notice.
type decision struct {
	keep   bool
	notice string
}

// decide asks the Checker about one tool call. Malformed arguments, a Checker error, an
// unknown action or a CONSTRAIN without an approval ID all remove the call.
func (mc *modelCall) decide(callID, name string, rawArgs []byte) decision {
	args, ok := arguments(rawArgs)
	if !ok {
		return malformedArguments(name)
	}
	v, err := mc.g.checker.CheckToolCall(mc.ctx, mc.caller, ToolCall{
		Format: mc.format, ModelCallID: mc.id, CallID: callID, Name: name, Arguments: args,
	})
	if err != nil {
		return decision{notice: fmt.Sprintf("[portcullis] The tool %s is unavailable: the call could not be checked against policy, so it was not executed.", quote(name))}
	}
	switch {
	case v.Malformed:
		return malformedArguments(name)
	case v.Action == Allow:
		return decision{keep: true}
	case v.Action == Constrain && v.ApprovalID != "":
		return decision{notice: fmt.Sprintf("[portcullis] The call to tool %s requires approval and was not executed. Approval ID: %s (decision %s). Retry the same call after it is approved.%s",
			quote(name), v.ApprovalID, v.DecisionID, reason(v.Message))}
	default:
		return decision{notice: fmt.Sprintf("[portcullis] The tool %s is unavailable: the call was denied by policy (decision %s) and was not executed.%s",
			quote(name), v.DecisionID, reason(v.Message))}
	}
}

// malformedArguments removes a call whose arguments are not one valid JSON object.
func malformedArguments(name string) decision {
	return decision{notice: fmt.Sprintf("[portcullis] The tool %s is unavailable: the model produced arguments that are not a valid JSON object, so the call was not executed.", quote(name))}
}

func reason(msg string) string {
	if msg == "" {
		return ""
	}
	return " Reason: " + msg
}

// filterTools asks which of the offered tool names may stay. The result is a set; names the
// Checker returns that were not offered are ignored (it can only narrow the offer).
func (mc *modelCall) filterTools(names []string) (map[string]bool, error) {
	allowed, err := mc.g.checker.AllowedTools(mc.ctx, mc.caller, names)
	if err != nil {
		return nil, &httpError{status: http.StatusServiceUnavailable, code: codeCheckerFailed, msg: "the tools offered could not be checked against policy"}
	}
	set := make(map[string]bool, len(allowed))
	for _, n := range allowed {
		set[n] = true
	}
	return set, nil
}

// offeredTools reads the request's "tools" (each named by name) and keeps those the policy could
// ever let the agent call. removed reports whether any was dropped; a request without tools
// returns nothing removed. The codecs then fix up tool_choice and the fields that go with tools,
// which differ per wire format.
func (mc *modelCall) offeredTools(req object, name func(object) string) (kept []object, allowed map[string]bool, removed bool, err error) {
	tools, err := req.objs("tools")
	if err != nil {
		return nil, nil, false, badRequest("tools: must be an array of tool objects")
	}
	if tools == nil {
		return nil, nil, false, nil
	}
	names := make([]string, len(tools))
	for i, t := range tools {
		names[i] = name(t)
	}
	if allowed, err = mc.filterTools(names); err != nil {
		return nil, nil, false, err
	}
	kept = tools[:0:0]
	for i, t := range tools {
		if allowed[names[i]] {
			kept = append(kept, t)
		}
	}
	return kept, allowed, len(kept) != len(tools), nil
}

// inspect asks about one piece of conversation text; it returns the text to send.
func (mc *modelCall) inspect(role, toolCallID, text string) (string, error) {
	if text == "" {
		return text, nil
	}
	v, err := mc.g.checker.InspectContent(mc.ctx, mc.caller, Content{
		Format: mc.format, ModelCallID: mc.id, Role: role, ToolCallID: toolCallID, Text: text, New: mc.fresh,
	})
	if err != nil {
		return "", &httpError{status: http.StatusServiceUnavailable, code: codeCheckerFailed, msg: "the conversation could not be inspected"}
	}
	switch v.Action {
	case Pass:
		return text, nil
	case Redact:
		return v.Text, nil
	}
	what := "the " + role + " content"
	switch role {
	case "tool":
		what = "a tool result"
		if toolCallID != "" {
			what = "the result of tool call " + quote(toolCallID)
		}
		if mc.g.cfg.BlockedResult == BlockedResultReplace {
			// The model gets a notice in place of the result and the conversation goes on: an
			// application's loop would otherwise resend the same history, refused every turn.
			return fmt.Sprintf("[portcullis] This tool result was withheld: it was blocked by policy (decision %s) and the model does not see it.%s",
				v.DecisionID, reason(v.Message)), nil
		}
	case "document":
		what = "an attached document"
	}
	return "", &httpError{status: http.StatusBadRequest, code: codeContentBlocked,
		msg: fmt.Sprintf("%s in the conversation was blocked by policy (decision %s).%s", what, v.DecisionID, reason(v.Message))}
}

// lastModelTurn is the index of the last element of a conversation the model wrote (-1: none);
// what follows it is new in this model call.
func lastModelTurn(items []object, byModel func(object) bool) int {
	last := -1
	for i, it := range items {
		if byModel(it) {
			last = i
		}
	}
	return last
}

func isAssistant(m object) bool {
	role, _ := m.str("role")
	return role == "assistant"
}

// toolChoiceRemoved refuses a request that forces a tool the policy removed from the offer.
func toolChoiceRemoved(name string) error {
	return &httpError{status: http.StatusBadRequest, code: codeToolUnavailable,
		msg: fmt.Sprintf("tool_choice names the tool %s, which is not available to this agent", quote(name))}
}

// toolChoiceNoneLeft refuses a request that requires a tool call when the policy removed every
// tool offered: dropping the requirement silently would answer a question the agent did not ask.
func toolChoiceNoneLeft() error {
	return &httpError{status: http.StatusBadRequest, code: codeToolUnavailable,
		msg: "tool_choice requires a tool call, and none of the tools offered is available to this agent"}
}

// joinNotices appends notices to text already produced by the model.
func joinNotices(existing string, notices []string) string {
	n := strings.Join(notices, "\n")
	if existing == "" {
		return n
	}
	return existing + "\n\n" + n
}
