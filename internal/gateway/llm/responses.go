package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// responsesCodec is the OpenAI Responses API.
type responsesCodec struct{}

// hostedCalls are output items the provider executed itself (the agent never runs them);
// the gateway controls them only by filtering the tools offered.
var hostedCalls = map[string]bool{
	"web_search_call": true, "file_search_call": true, "code_interpreter_call": true,
	"image_generation_call": true, "mcp_call": true, "tool_search_call": true,
}

// checkedItem reports whether an output item is a call the agent would execute, and if so
// its call ID, tool name and arguments text.
func checkedItem(item object) (ok bool, callID, name string, args []byte) {
	typ, _ := item.str("type")
	callID, _ = item.str("call_id")
	switch {
	case typ == "function_call":
		name, _ = item.str("name")
		a, _ := item.str("arguments")
		args = []byte(a)
	case typ == "custom_tool_call":
		name, _ = item.str("name")
		in, _ := item.str("input")
		args = mustMarshal(map[string]string{"input": in})
	case strings.HasSuffix(typ, "_call") && !hostedCalls[typ]:
		// computer_call, local_shell_call, shell_call, apply_patch_call and any call type
		// added later: the agent executes these, so they are decided under the tool's type.
		name = strings.TrimSuffix(typ, "_call")
		if a, ok := item["action"]; ok && len(a) > 0 && a[0] == '{' {
			args = a
		} else {
			args = item.bytes()
		}
	default:
		return false, "", "", nil
	}
	if name == "" {
		args = []byte("unnamed")
	}
	return true, callID, name, args
}

// noticeItem is the message output item that replaces a removed call.
func noticeItem(id, text string, completed bool) map[string]any {
	status := "completed"
	content := []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}, "logprobs": []any{}}}
	if !completed {
		status, content = "in_progress", []any{}
	}
	return map[string]any{"id": id, "type": "message", "role": "assistant", "status": status, "content": content}
}

func noticeItemID(item object, callID string) string {
	if id, _ := item.str("id"); id != "" {
		return "msg_portcullis_" + strings.TrimPrefix(id, "fc_")
	}
	return "msg_portcullis_" + callID
}

// responsesToolName names a tool definition for AllowedTools: its name; "mcp:<server_label>"
// for a remote MCP server; otherwise its type (web_search, file_search, …).
func responsesToolName(t object) string {
	if n, _ := t.str("name"); n != "" {
		return n
	}
	typ, _ := t.str("type")
	if typ == "mcp" {
		label, _ := t.str("server_label")
		return "mcp:" + label
	}
	return typ
}

func (responsesCodec) request(mc *modelCall, req object) (bool, error) {
	kept, allowed, removed, err := mc.offeredTools(req, responsesToolName)
	if err != nil {
		return false, err
	}
	changed := removed
	if removed {
		if tc, _ := req.obj("tool_choice"); tc != nil {
			n, _ := tc.str("name")
			if typ, _ := tc.str("type"); n == "" && typ != "allowed_tools" {
				n = typ // {"type":"web_search"} and other hosted tools
			}
			if n != "" && n != "allowed_tools" && !allowed[n] {
				return false, toolChoiceRemoved(n)
			}
		}
		if tc, _ := req.str("tool_choice"); tc == "required" && len(kept) == 0 {
			return false, toolChoiceNoneLeft()
		}
		if len(kept) == 0 {
			delete(req, "tools")
			delete(req, "tool_choice")
			delete(req, "parallel_tool_calls")
		} else {
			req.set("tools", kept)
		}
	}
	c, err := mc.inspectValue(req, "instructions", "system", "", respInputParts)
	if err != nil {
		return false, err
	}
	changed = changed || c
	if c, err := mc.inspectPromptVariables(req); err != nil {
		return false, err
	} else if c {
		changed = true
	}
	if _, ok := req.str("input"); ok {
		c, err := mc.inspectString(req, "input", "user", "")
		if err != nil {
			return false, err
		}
		c2, err := mc.continueConversation(req)
		return changed || c || c2, err
	}
	items, err := req.objs("input")
	if err != nil {
		return false, badRequest("input: must be a string or an array of input items")
	}
	itemsChanged := false
	// Continuing a stored conversation, every input item is new; otherwise what follows the
	// model's last item (its message or a call it proposed).
	last := -1
	if prev, _ := req.str("previous_response_id"); prev == "" {
		last = lastModelTurn(items, func(it object) bool {
			typ, _ := it.str("type")
			return (modelItems[typ] && typ != "computer_call_output" && typ != "item_reference") ||
				((typ == "" || typ == "message") && isAssistant(it))
		})
	}
	for i, it := range items {
		mc.fresh = i > last
		c, err := mc.inspectInputItem(it)
		if err != nil {
			return false, err
		}
		itemsChanged = itemsChanged || c
	}
	if itemsChanged {
		req.set("input", items)
		changed = true
	}
	c, err = mc.continueConversation(req)
	return changed || c, err
}

// modelItems are input items that replay what the model itself produced (checked when it was
// produced) or carry no text: they pass uninspected. Every other type is inspected below or refused.
var modelItems = map[string]bool{
	"function_call": true, "custom_tool_call": true, "computer_call": true, "local_shell_call": true,
	"shell_call": true, "apply_patch_call": true, "web_search_call": true, "image_generation_call": true,
	"reasoning": true, "item_reference": true, "mcp_approval_request": true, "compaction": true,
	// A screenshot; its acknowledged_safety_checks repeat what the model's computer_call carried.
	"computer_call_output": true,
}

// inspectInputItem inspects one Responses input item: every text that goes back to the model.
func (mc *modelCall) inspectInputItem(it object) (bool, error) {
	typ, _ := it.str("type")
	role, _ := it.str("role")
	callID, _ := it.str("call_id")
	switch {
	case typ == "" || typ == "message":
		switch role {
		case "assistant":
			return false, nil // the model's own output
		case "user", "system", "developer":
			return mc.inspectValue(it, "content", role, "", respInputParts)
		default:
			return false, unsupported("a message of role %q", role)
		}
	case typ == "function_call_output" || typ == "custom_tool_call_output":
		return mc.inspectValue(it, "output", "tool", callID, respInputParts)
	case typ == "local_shell_call_output" || typ == "apply_patch_call_output":
		if callID == "" {
			callID, _ = it.str("id")
		}
		return mc.inspectString(it, "output", "tool", callID)
	case typ == "shell_call_output":
		return mc.inspectObjects(it, "output", "tool", callID, "stdout", "stderr")
	case typ == "mcp_call":
		// Replayed by the client, so its output is whatever the client says the server returned.
		id, _ := it.str("id")
		c1, err := mc.inspectString(it, "output", "tool", id)
		if err != nil {
			return false, err
		}
		c2, err := mc.inspectString(it, "error", "tool", id)
		return c1 || c2, err
	case typ == "mcp_list_tools":
		id, _ := it.str("id")
		if _, err := mc.inspectString(it, "error", "tool", id); err != nil {
			return false, err
		}
		return false, mc.inspectRaw("tool", id, it["tools"])
	case typ == "mcp_approval_response":
		return mc.inspectString(it, "reason", "user", "")
	case typ == "code_interpreter_call":
		id, _ := it.str("id")
		return mc.inspectObjects(it, "outputs", "tool", id, "logs")
	case typ == "file_search_call":
		id, _ := it.str("id")
		return mc.inspectObjects(it, "results", "tool", id, "text")
	case modelItems[typ]:
		return false, nil
	default:
		return false, unsupported("an input item of type %q", typ)
	}
}

// inspectPromptVariables inspects the values of a reusable prompt's variables: strings, or input
// parts, substituted into the prompt the model reads.
func (mc *modelCall) inspectPromptVariables(req object) (bool, error) {
	p, err := req.obj("prompt")
	if err != nil {
		return false, badRequest("prompt: must be an object")
	}
	if p == nil {
		return false, nil
	}
	vars, err := p.obj("variables")
	if err != nil {
		return false, badRequest("prompt.variables: must be an object")
	}
	changed := false
	for k, v := range vars {
		var c bool
		if _, ok := vars.str(k); ok {
			c, err = mc.inspectString(vars, k, "user", "")
		} else {
			part, perr := parseObject(v)
			if perr != nil {
				return false, unsupported("prompt variable %q", k)
			}
			c, err = mc.inspectParts([]object{part}, "user", "", respInputParts)
			if c {
				vars[k] = part.bytes()
			}
		}
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	if changed {
		p.set("variables", vars)
		req.set("prompt", p)
	}
	return changed, nil
}

func (responsesCodec) response(mc *modelCall, resp object) (bool, error) {
	items, err := resp.objs("output")
	if err != nil {
		return false, fmt.Errorf("output: %w", err)
	}
	removed := false
	for i, it := range items {
		ok, callID, name, args := checkedItem(it)
		if !ok {
			continue
		}
		if d := mc.decide(callID, name, args); !d.keep {
			mc.noteRemoved(it, callID, d.notice)
			items[i] = object{}
			for k, v := range noticeItem(noticeItemID(it, callID), d.notice, true) {
				items[i].set(k, v)
			}
			removed = true
		}
	}
	if removed {
		resp.set("output", items)
	}
	return removed, nil
}

// responsesStream holds every event of a checked output item, from response.output_item.added
// to response.output_item.done, and decides on the done item. While an item is held, later
// events queue behind it so output order never changes. An allowed item is replayed as
// received (for function_call only if its argument deltas add up to the checked arguments);
// a removed one is replaced, at the same output_index, by the event sequence of a message
// item carrying the notice. The terminal response.* event's output gets the same
// replacement, and sequence_number is rewritten on every event so it stays consecutive.
type responsesStream struct {
	mc       *modelCall
	queue    []rqueued
	items    map[int]*heldItem
	byID     map[string]object // removed item id → replacement item
	decided  map[string]string // id of every item decided while streaming → what was decided (callSignature)
	open     int
	seq      int
	held     int64
	terminal bool
}

type rqueued struct {
	data  object
	raw   []byte // the upstream bytes, written as-is when the sequence number still matches
	name  string
	item  int // output_index of the held item, or -1
	start bool
}

type heldItem struct {
	deltas strings.Builder
	// argsDone is the arguments (or input) of the item's *_arguments.done / *_input.done event,
	// when one came: an SDK may read the call from it, so it must agree with the checked item.
	argsDone    string
	hasArgsDone bool
	decision    decision
	done        bool
	replace     object
}

func (responsesCodec) stream(mc *modelCall) streamer {
	return &responsesStream{mc: mc, items: map[int]*heldItem{}, byID: map[string]object{}, decided: map[string]string{}}
}

var responseTerminal = map[string]bool{"response.completed": true, "response.incomplete": true, "response.failed": true}

func (s *responsesStream) event(ev sseEvent, out *sseWriter) (bool, error) {
	data, err := parseObject(ev.data)
	if err != nil {
		return false, malformed("an event that is not a JSON object")
	}
	typ, _ := data.str("type")
	if typ == "" {
		return false, malformed("an event without a type")
	}
	idx, hasIdx := data.int("output_index")
	switch {
	case typ == "error":
		s.emit(out, typ, data, ev.data)
		return true, nil
	case typ == "response.output_item.added":
		item, err := data.obj("item")
		if err != nil || item == nil || !hasIdx {
			return false, malformed("output_item.added without an item or output_index")
		}
		if ok, _, _, _ := checkedItem(item); ok {
			if s.items[idx] != nil {
				return false, malformed("a second output item at output_index %d", idx)
			}
			s.items[idx] = &heldItem{}
			s.open++
			s.queue = append(s.queue, rqueued{data: data, raw: ev.data, name: typ, item: idx, start: true})
			return false, nil
		}
	case hasIdx && s.items[idx] != nil && !s.items[idx].done:
		h := s.items[idx]
		if typ == "response.function_call_arguments.delta" || typ == "response.custom_tool_call_input.delta" {
			d, _ := data.str("delta")
			h.deltas.WriteString(d)
			s.held += int64(len(d))
			if s.held > s.mc.g.cfg.MaxResponseBytes {
				return false, malformed("tool arguments larger than %d bytes", s.mc.g.cfg.MaxResponseBytes)
			}
		}
		if typ == "response.function_call_arguments.done" || typ == "response.custom_tool_call_input.done" {
			field := "arguments"
			if typ == "response.custom_tool_call_input.done" {
				field = "input"
			}
			h.argsDone, _ = data.str(field)
			h.hasArgsDone = true
		}
		s.queue = append(s.queue, rqueued{data: data, raw: ev.data, name: typ, item: idx})
		if typ != "response.output_item.done" {
			return false, nil
		}
		item, err := data.obj("item")
		if err != nil || item == nil {
			return false, malformed("output_item.done without an item")
		}
		h.done = true
		s.open--
		ok, callID, name, args := checkedItem(item)
		if !ok {
			args = []byte("item type changed")
		}
		itype, _ := item.str("type")
		if itype == "function_call" && h.deltas.Len() > 0 && h.deltas.String() != string(mustUnquote(item["arguments"])) {
			args = []byte("argument deltas disagree with the final arguments")
		}
		if h.hasArgsDone && !argsDoneAgrees(item, h.argsDone) {
			args = []byte("the arguments' done event disagrees with the final arguments")
		}
		h.decision = s.mc.decide(callID, name, args)
		if iid, _ := item.str("id"); iid != "" {
			s.decided[iid] = callSignature(callID, name, args)
		}
		if !h.decision.keep {
			s.mc.noteRemoved(item, callID, h.decision.notice)
			id := noticeItemID(item, callID)
			h.replace = object{}
			for k, v := range noticeItem(id, h.decision.notice, true) {
				h.replace.set(k, v)
			}
			if iid, _ := item.str("id"); iid != "" {
				s.byID[iid] = h.replace
			}
		}
		if s.open == 0 {
			s.flush(out)
		}
		return false, nil
	case responseTerminal[typ]:
		if s.open > 0 {
			return false, malformed("%s while a tool call was still open", typ)
		}
		s.flush(out)
		changed, err := s.rewriteResponse(data)
		if err != nil {
			return false, err
		}
		raw := ev.data
		if changed {
			raw = nil
		}
		s.emit(out, typ, data, raw)
		s.terminal = true
		return true, nil
	}
	// Any other event must not carry a call past the checks above (fail closed on event
	// types this gateway does not know).
	if it, err := data.obj("item"); err != nil || (it != nil && isChecked(it)) {
		return false, malformed("a %s event carrying a tool call outside output_item events", typ)
	}
	if resp, err := data.obj("response"); err != nil || (resp != nil && hasCheckedOutput(resp)) {
		return false, malformed("a %s event whose response carries a tool call", typ)
	}
	if s.open > 0 {
		s.queue = append(s.queue, rqueued{data: data, raw: ev.data, name: typ, item: -1})
		return false, nil
	}
	s.emit(out, typ, data, ev.data)
	return false, nil
}

func isChecked(item object) bool {
	ok, _, _, _ := checkedItem(item)
	return ok
}

// hasCheckedOutput reports whether a response object's output holds a call (or is not an
// array of items, which cannot be checked).
func hasCheckedOutput(resp object) bool {
	items, err := resp.objs("output")
	if err != nil {
		return true
	}
	for _, it := range items {
		if isChecked(it) {
			return true
		}
	}
	return false
}

func mustUnquote(v json.RawMessage) string {
	var s string
	_ = json.Unmarshal(v, &s)
	return s
}

// argsDoneAgrees reports whether the text of an item's arguments (or input) done event equals
// the item's own final arguments.
func argsDoneAgrees(item object, done string) bool {
	if typ, _ := item.str("type"); typ == "custom_tool_call" {
		in, _ := item.str("input")
		return in == done
	}
	a, _ := item.str("arguments")
	return a == done
}

// callSignature is what was decided about one call: its call ID, name and arguments, the
// arguments compacted (whitespace outside strings is not a different call; anything else is).
func callSignature(callID, name string, args []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, args); err != nil {
		b.Reset()
		b.Write(args)
	}
	return strconv.Quote(callID) + " " + strconv.Quote(name) + " " + b.String()
}

// rewriteResponse replaces removed items in a terminal event's response.output, and decides
// any call there that never streamed as an item of its own. An item under the ID of one that
// was allowed while streaming must be the very call that was decided: an SDK hands the agent
// the terminal response (finalResponse, the completed snapshot), so a terminal object that
// swaps the name or the arguments would run a call nobody checked. Such a stream, or one that
// repeats a decided item, ends upstream_malformed.
func (s *responsesStream) rewriteResponse(data object) (bool, error) {
	resp, err := data.obj("response")
	if err != nil || resp == nil {
		return false, malformed("a terminal event without a response")
	}
	items, err := resp.objs("output")
	if err != nil {
		return false, malformed("a terminal response whose output is not an array of items")
	}
	changed := false
	seen := map[string]bool{}
	for i, it := range items {
		id, _ := it.str("id")
		sig, decided := s.decided[id]
		if decided || s.byID[id] != nil {
			if seen[id] {
				return false, malformed("a terminal response that repeats output item %s", quote(id))
			}
			seen[id] = true
		}
		if s.byID[id] != nil {
			items[i] = s.byID[id]
			changed = true
		} else if decided {
			ok, callID, name, args := checkedItem(it)
			if !ok || callSignature(callID, name, args) != sig {
				return false, malformed("a terminal response whose item %s is not the call that was checked", quote(id))
			}
		} else if ok, callID, name, args := checkedItem(it); ok {
			// A call in the final output that never streamed as an item: decide it now.
			if d := s.mc.decide(callID, name, args); !d.keep {
				s.mc.noteRemoved(it, callID, d.notice)
				items[i] = object{}
				for k, v := range noticeItem(noticeItemID(it, callID), d.notice, true) {
					items[i].set(k, v)
				}
				changed = true
			}
		}
	}
	if changed {
		resp.set("output", items)
		data.set("response", resp)
	}
	s.mc.rememberRemoved(resp)
	if err := s.mc.linkResponse(resp); err != nil {
		return false, &streamError{status: http.StatusServiceUnavailable, code: codeSession, msg: "the gateway could not record the conversation's session"}
	}
	return changed, nil
}

// emit writes one event with the next sequence number; an upstream event whose number is
// already right is written byte for byte.
func (s *responsesStream) emit(out *sseWriter, name string, data object, raw []byte) {
	if n, ok := data.int("sequence_number"); !ok || n != s.seq {
		data.set("sequence_number", s.seq)
		raw = nil
	}
	s.seq++
	if raw == nil {
		raw = data.bytes()
	}
	out.write(sseEvent{name: name, data: raw})
}

func (s *responsesStream) flush(out *sseWriter) {
	for _, q := range s.queue {
		if q.item < 0 {
			s.emit(out, q.name, q.data, q.raw)
			continue
		}
		h := s.items[q.item]
		if h.decision.keep {
			s.emit(out, q.name, q.data, q.raw)
			continue
		}
		if !q.start {
			continue
		}
		id, _ := h.replace.str("id")
		text := h.decision.notice
		part := map[string]any{"type": "output_text", "text": "", "annotations": []any{}, "logprobs": []any{}}
		done := map[string]any{"type": "output_text", "text": text, "annotations": []any{}, "logprobs": []any{}}
		ev := func(typ string, fields map[string]any) {
			o := object{}
			o.set("type", typ)
			o.set("output_index", q.item)
			for k, v := range fields {
				o.set(k, v)
			}
			s.emit(out, typ, o, nil)
		}
		ev("response.output_item.added", map[string]any{"item": noticeItem(id, text, false)})
		ev("response.content_part.added", map[string]any{"item_id": id, "content_index": 0, "part": part})
		ev("response.output_text.delta", map[string]any{"item_id": id, "content_index": 0, "delta": text, "logprobs": []any{}})
		ev("response.output_text.done", map[string]any{"item_id": id, "content_index": 0, "text": text, "logprobs": []any{}})
		ev("response.content_part.done", map[string]any{"item_id": id, "content_index": 0, "part": done})
		ev("response.output_item.done", map[string]any{"item": h.replace})
	}
	s.queue = s.queue[:0]
}

func (s *responsesStream) end(out *sseWriter) error {
	if !s.terminal {
		return &streamError{status: 502, code: codeStreamIncomplete, msg: "the upstream stream ended before response.completed"}
	}
	return nil
}

func (s *responsesStream) nextSeq() int { return s.seq }
