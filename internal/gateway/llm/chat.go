package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// chatCodec is OpenAI Chat Completions (also served by vLLM, Ollama and other
// OpenAI-compatible servers).
type chatCodec struct{}

// chatToolName is a tool definition's name: function.name, custom.name, or its type for
// other tool kinds.
func chatToolName(t object) string {
	typ, _ := t.str("type")
	if inner, err := t.obj(typ); err == nil && inner != nil {
		if n, ok := inner.str("name"); ok {
			return n
		}
	}
	return typ
}

func (chatCodec) request(mc *modelCall, req object) (bool, error) {
	if req.has("functions") || req.has("function_call") {
		return false, badRequest("the deprecated functions/function_call fields are not supported by the gateway; use tools")
	}
	kept, allowed, removed, err := mc.offeredTools(req, chatToolName)
	if err != nil {
		return false, err
	}
	changed := removed
	if removed {
		if err := checkToolChoice(req, allowed); err != nil {
			return false, err
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
	msgs, err := req.objs("messages")
	if err != nil {
		return false, badRequest("messages: must be an array of message objects")
	}
	msgsChanged := false
	last := lastModelTurn(msgs, isAssistant)
	for i, m := range msgs {
		mc.fresh = i > last
		role, _ := m.str("role")
		id, _ := m.str("tool_call_id")
		var c bool
		switch role {
		case "assistant":
			continue // the model's own output, checked when it was produced
		case "user":
			c, err = mc.inspectValue(m, "content", role, "", chatUserParts)
		case "system", "developer", "tool":
			c, err = mc.inspectValue(m, "content", role, id, chatTextParts)
		case "function":
			// The deprecated function-call result: a tool result all the same.
			c, err = mc.inspectValue(m, "content", "tool", "", chatTextParts)
		default:
			return false, unsupported("a message of role %q", role)
		}
		if err != nil {
			return false, err
		}
		msgsChanged = msgsChanged || c
	}
	if msgsChanged {
		req.set("messages", msgs)
		changed = true
	}
	return changed, nil
}

// checkToolChoice refuses a tool_choice that forces a removed tool.
func checkToolChoice(req object, allowed map[string]bool) error {
	tc, err := req.obj("tool_choice")
	if err != nil || tc == nil {
		return nil // "auto", "none", "required" or absent
	}
	if name := chatToolName(tc); name != "" && name != "allowed_tools" && !allowed[name] {
		return toolChoiceRemoved(name)
	}
	return nil
}

// chatToolCall reads one tool call of a message: its id, name and arguments text.
func chatToolCall(tc object) (id, name string, args []byte) {
	id, _ = tc.str("id")
	typ, _ := tc.str("type")
	switch typ {
	case "function", "":
		fn, _ := tc.obj("function")
		if fn != nil {
			name, _ = fn.str("name")
			a, _ := fn.str("arguments")
			args = []byte(a)
		}
	case "custom":
		cu, _ := tc.obj("custom")
		if cu != nil {
			name, _ = cu.str("name")
			in, _ := cu.str("input")
			args = mustMarshal(map[string]string{"input": in})
		}
	default:
		name, args = typ, []byte("not a known tool call type")
	}
	if name == "" {
		args = []byte("unnamed") // a call without a name cannot be decided: refused as malformed
	}
	return id, name, args
}

func (chatCodec) response(mc *modelCall, resp object) (bool, error) {
	choices, err := resp.objs("choices")
	if err != nil {
		return false, fmt.Errorf("choices: %w", err)
	}
	changed := false
	for i, ch := range choices {
		msg, err := ch.obj("message")
		if err != nil {
			return false, fmt.Errorf("choices[%d]: %w", i, err)
		}
		if msg == nil {
			continue
		}
		var notices []string
		if msg.has("function_call") {
			delete(msg, "function_call")
			notices = append(notices, "[portcullis] A legacy function_call was removed: the gateway supports tools only.")
		}
		calls, err := msg.objs("tool_calls")
		if err != nil {
			return false, fmt.Errorf("choices[%d].message.tool_calls: %w", i, err)
		}
		var kept []object
		for _, tc := range calls {
			id, name, args := chatToolCall(tc)
			d := mc.decide(id, name, args)
			if d.keep {
				kept = append(kept, tc)
			} else {
				notices = append(notices, d.notice)
			}
		}
		if len(notices) == 0 {
			continue
		}
		content, _ := msg.str("content")
		msg.set("content", joinNotices(content, notices))
		if len(kept) > 0 {
			msg.set("tool_calls", kept)
		} else {
			delete(msg, "tool_calls")
			if fr, _ := ch.str("finish_reason"); fr == "tool_calls" || fr == "function_call" {
				ch.set("finish_reason", "stop")
			}
		}
		ch.set("message", msg)
		changed = true
	}
	if changed {
		resp.set("choices", choices)
	}
	return changed, nil
}

// chatStream holds tool-call deltas per choice until each call's arguments are complete
// (the next tool-call index starts, or the choice finishes), then emits an allowed call as
// one re-synthesised chunk under a dense downstream index, or drops it and adds its notice
// as a content delta before the finish chunk.
type chatStream struct {
	mc      *modelCall
	choices map[int]*chatChoice
	held    int64 // bytes of held arguments, bounded by MaxResponseBytes
}

type chatChoice struct {
	pending     map[int]*chatPending
	open        []int // upstream indices still being received, ascending
	closed      map[int]bool
	emitted     int // downstream tool-call indices handed out
	notices     []string
	sawContent  bool
	finished    bool
	sawToolCall bool
}

type chatPending struct {
	id, typ, name string
	args          bytes.Buffer
}

func (chatCodec) stream(mc *modelCall) streamer {
	return &chatStream{mc: mc, choices: map[int]*chatChoice{}}
}

func (s *chatStream) choice(i int) *chatChoice {
	c := s.choices[i]
	if c == nil {
		c = &chatChoice{pending: map[int]*chatPending{}, closed: map[int]bool{}}
		s.choices[i] = c
	}
	return c
}

func (s *chatStream) event(ev sseEvent, out *sseWriter) (bool, error) {
	if bytes.Equal(bytes.TrimSpace(ev.data), []byte("[DONE]")) {
		for i, c := range s.choices {
			if len(c.open) > 0 {
				return true, malformed("[DONE] while tool call arguments of choice %d were incomplete", i)
			}
		}
		out.write(ev)
		return true, nil
	}
	chunk, err := parseObject(ev.data)
	if err != nil {
		return false, malformed("a stream chunk that is not a JSON object")
	}
	if chunk.has("error") {
		out.write(ev) // a provider error mid-stream: relay it, held calls are dropped
		return true, nil
	}
	choices, err := chunk.objs("choices")
	if err != nil {
		return false, malformed("a chunk whose choices are not objects")
	}
	var before [][]byte // synthesized chunks that go before the (rewritten) upstream chunk
	var after [][]byte  // notices go after it; finish chunks last
	modified := false
	for _, ch := range choices {
		idx, ok := ch.int("index")
		if !ok {
			return false, malformed("a chunk choice without an index")
		}
		c := s.choice(idx)
		if _, ok := ch["message"]; ok {
			return false, malformed("a stream chunk carrying a whole message")
		}
		delta, err := ch.obj("delta")
		if err != nil {
			return false, malformed("a chunk choice whose delta is not an object")
		}
		if delta != nil {
			if t, _ := delta.str("content"); t != "" {
				c.sawContent = true
			}
			if delta.has("function_call") {
				delete(delta, "function_call")
				c.notices = append(c.notices, "[portcullis] A legacy function_call was removed: the gateway supports tools only.")
				modified = true
			}
			if _, ok := delta["tool_calls"]; ok {
				out, err := s.toolDeltas(chunk, idx, c, delta)
				if err != nil {
					return false, err
				}
				before = append(before, out...)
				delete(delta, "tool_calls")
				modified = true
			}
			if modified {
				ch.set("delta", delta)
			}
		}
		if fr, ok := ch.str("finish_reason"); ok {
			// Everything pending in this choice is complete: decide and emit before the finish.
			for len(c.open) > 0 {
				before = append(before, s.finish(chunk, idx, c, c.open[0]))
			}
			c.finished = true
			if len(c.notices) > 0 {
				text := strings.Join(c.notices, "\n")
				if c.sawContent {
					text = "\n\n" + text
				}
				c.notices = nil
				after = append(after, synthChunk(chunk, idx, map[string]any{"content": text}))
			}
			if (fr == "tool_calls" || fr == "function_call") && c.emitted == 0 {
				ch.set("finish_reason", "stop")
				modified = true
			}
		}
	}
	for _, b := range before {
		if b != nil { // nil: a withheld call
			out.write(sseEvent{data: b})
		}
	}
	if !modified {
		if len(after) == 0 {
			out.write(ev)
			return false, nil
		}
	}
	// A rewritten chunk whose choices all carry nothing is dropped (it only held tool deltas).
	rest := false
	for _, ch := range choices {
		if d, _ := ch.obj("delta"); len(d) > 0 || ch.has("finish_reason") || ch.has("logprobs") {
			rest = true
		}
	}
	if chunk.has("usage") || len(choices) == 0 {
		rest = true
	}
	if len(after) > 0 {
		// Notices must precede the finish: write them, then the chunk carrying finish_reason.
		for _, b := range after {
			out.write(sseEvent{data: b})
		}
	}
	if rest {
		chunk.set("choices", choices)
		out.write(sseEvent{data: chunk.bytes()})
	}
	return false, nil
}

// toolDeltas folds tool_call deltas of one choice into the pending calls; a delta for a
// higher index completes every open call below it.
func (s *chatStream) toolDeltas(chunk object, idx int, c *chatChoice, delta object) ([][]byte, error) {
	tcs, err := delta.objs("tool_calls")
	if err != nil {
		return nil, malformed("tool_calls deltas that are not objects")
	}
	var out [][]byte
	for _, tc := range tcs {
		k, ok := tc.int("index")
		if !ok || k == -1 {
			k = 0 // some servers omit the index or send -1 for a single call
		}
		if k < 0 || c.closed[k] {
			return nil, malformed("a tool call delta for index %d after that call was complete", k)
		}
		if c.finished {
			return nil, malformed("a tool call delta after the choice finished")
		}
		for len(c.open) > 0 && c.open[0] < k {
			out = append(out, s.finish(chunk, idx, c, c.open[0]))
		}
		p := c.pending[k]
		if p == nil {
			p = &chatPending{}
			c.pending[k] = p
			c.open = append(c.open, k)
			c.sawToolCall = true
		}
		if id, _ := tc.str("id"); id != "" {
			p.id = id
		}
		if t, _ := tc.str("type"); t != "" {
			p.typ = t
		}
		if fn, _ := tc.obj("function"); fn != nil {
			// A non-empty name replaces the one held, as the openai-node SDK's stream accumulator
			// does: some OpenAI-compatible servers repeat the whole name in every delta, which
			// appending would turn into "get_weatherget_weather". Whatever the name ends up as is
			// what is decided and what the agent receives (the call is re-synthesised), so the
			// SDKs that append instead never see a fragment.
			if n, _ := fn.str("name"); n != "" {
				p.name = n
			}
			a, _ := fn.str("arguments")
			p.args.WriteString(a)
			s.held += int64(len(a))
		}
		if cu, _ := tc.obj("custom"); cu != nil {
			if n, _ := cu.str("name"); n != "" {
				p.name = n
			}
			in, _ := cu.str("input")
			p.args.WriteString(in)
			s.held += int64(len(in))
		}
		if s.held > s.mc.g.cfg.MaxResponseBytes {
			return nil, malformed("tool call arguments larger than %d bytes", s.mc.g.cfg.MaxResponseBytes)
		}
	}
	return out, nil
}

// finish decides the first open call of a choice and returns what to emit for it (nil when
// it is withheld: its notice is queued for the finish of the choice).
func (s *chatStream) finish(chunk object, idx int, c *chatChoice, k int) []byte {
	c.open = c.open[1:]
	c.closed[k] = true
	p := c.pending[k]
	delete(c.pending, k)
	args := p.args.Bytes()
	typ := p.typ
	if typ == "" {
		typ = "function"
	}
	if typ == "custom" {
		args = mustMarshal(map[string]string{"input": p.args.String()})
	}
	if p.name == "" || (typ != "function" && typ != "custom") {
		args = []byte("not a known tool call")
	}
	d := s.mc.decide(p.id, p.name, args)
	if !d.keep {
		c.notices = append(c.notices, d.notice)
		return nil
	}
	call := map[string]any{"index": c.emitted, "id": p.id, "type": typ}
	if typ == "custom" {
		call["custom"] = map[string]any{"name": p.name, "input": p.args.String()}
	} else {
		call["function"] = map[string]any{"name": p.name, "arguments": p.args.String()}
	}
	c.emitted++
	return synthChunk(chunk, idx, map[string]any{"tool_calls": []any{call}})
}

// synthChunk is a chunk with the upstream chunk's envelope (id, model, created, …) carrying
// one delta for choice idx.
func synthChunk(chunk object, idx int, delta map[string]any) []byte {
	c := make(map[string]json.RawMessage, len(chunk))
	for k, v := range chunk {
		switch k {
		case "choices", "usage", "obfuscation":
		default:
			c[k] = v
		}
	}
	c["choices"] = mustMarshal([]any{map[string]any{"index": idx, "delta": delta, "finish_reason": nil, "logprobs": nil}})
	return mustMarshal(c)
}

func (s *chatStream) end(out *sseWriter) error {
	// Some OpenAI-compatible servers close without [DONE]; that is a valid end only if every
	// choice finished (held calls were then already decided).
	if len(s.choices) == 0 {
		return malformed("an empty stream")
	}
	for i, c := range s.choices {
		if !c.finished {
			return &streamError{status: 502, code: codeStreamIncomplete, msg: fmt.Sprintf("the upstream stream ended before choice %d finished", i)}
		}
	}
	return nil
}

func (s *chatStream) nextSeq() int { return 0 }
