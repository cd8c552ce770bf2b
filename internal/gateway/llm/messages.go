package llm

import (
	"bytes"
	"fmt"
)

// messagesCodec is Anthropic Messages.
type messagesCodec struct{}

// messagesToolName is a tool's name, or for Anthropic's server tools without one, its type. An
// mcp_toolset (the tools of a provider-run MCP server) is "mcp:<mcp_server_name>", as the
// Responses mcp tool is "mcp:<server_label>".
func messagesToolName(t object) string {
	typ, _ := t.str("type")
	if typ == "mcp_toolset" {
		n, _ := t.str("mcp_server_name")
		return "mcp:" + n
	}
	if n, _ := t.str("name"); n != "" {
		return n
	}
	return typ
}

// filterMCPServers keeps the provider-run MCP servers (mcp_servers, the MCP connector) the
// policy could let the agent use, each named "mcp:<name>" as the Responses mcp tool is: the
// provider calls their tools itself, so the offer is the only place the policy applies. An
// mcp_toolset left naming a removed server is removed too.
func (mc *modelCall) filterMCPServers(req object) (bool, error) {
	servers, err := req.objs("mcp_servers")
	if err != nil {
		return false, badRequest("mcp_servers: must be an array of server objects")
	}
	if servers == nil {
		return false, nil
	}
	names := make([]string, len(servers))
	for i, sv := range servers {
		n, _ := sv.str("name")
		names[i] = "mcp:" + n
	}
	allowed, err := mc.filterTools(names)
	if err != nil {
		return false, err
	}
	kept := servers[:0:0]
	for i, sv := range servers {
		if allowed[names[i]] {
			kept = append(kept, sv)
		}
	}
	if len(kept) == len(servers) {
		return false, nil
	}
	if len(kept) == 0 {
		delete(req, "mcp_servers")
	} else {
		req.set("mcp_servers", kept)
	}
	// A toolset naming a server no longer sent would be refused by the provider; drop it.
	if tools, _ := req.objs("tools"); tools != nil {
		left := tools[:0:0]
		for _, t := range tools {
			if typ, _ := t.str("type"); typ == "mcp_toolset" {
				if n, _ := t.str("mcp_server_name"); !allowed["mcp:"+n] {
					continue
				}
			}
			left = append(left, t)
		}
		if len(left) == 0 {
			delete(req, "tools")
			delete(req, "tool_choice")
		} else if len(left) != len(tools) {
			req.set("tools", left)
		}
	}
	return true, nil
}

func (messagesCodec) request(mc *modelCall, req object) (bool, error) {
	kept, allowed, removed, err := mc.offeredTools(req, messagesToolName)
	if err != nil {
		return false, err
	}
	changed := removed
	if removed {
		if tc, _ := req.obj("tool_choice"); tc != nil {
			switch typ, _ := tc.str("type"); {
			case typ == "tool":
				if n, _ := tc.str("name"); !allowed[n] {
					return false, toolChoiceRemoved(n)
				}
			case typ == "any" && len(kept) == 0:
				return false, toolChoiceNoneLeft()
			}
		}
		if len(kept) == 0 {
			delete(req, "tools")
			delete(req, "tool_choice")
		} else {
			req.set("tools", kept)
		}
	}
	if c, err := mc.filterMCPServers(req); err != nil {
		return false, err
	} else if c {
		changed = true
	}
	c, err := mc.inspectValue(req, "system", "system", "", msgsTextBlocks)
	if err != nil {
		return false, err
	}
	changed = changed || c
	msgs, err := req.objs("messages")
	if err != nil {
		return false, badRequest("messages: must be an array of message objects")
	}
	msgsChanged := false
	last := lastModelTurn(msgs, isAssistant)
	for i, m := range msgs {
		mc.fresh = i > last
		switch role, _ := m.str("role"); role {
		case "assistant":
			continue // the model's own output
		case "user":
		default:
			return false, unsupported("a message of role %q", role)
		}
		if _, ok := m.str("content"); ok {
			c, err := mc.inspectString(m, "content", "user", "")
			if err != nil {
				return false, err
			}
			msgsChanged = msgsChanged || c
			continue
		}
		blocks, err := m.objs("content")
		if err != nil {
			return false, badRequest("messages: content must be a string or an array of content blocks")
		}
		blocksChanged := false
		for _, b := range blocks {
			typ, _ := b.str("type")
			var c bool
			if typ == "tool_result" {
				id, _ := b.str("tool_use_id")
				c, err = mc.inspectValue(b, "content", "tool", id, msgsResultBlocks)
			} else {
				c, err = mc.inspectParts([]object{b}, "user", "", msgsUserBlocks)
			}
			if err != nil {
				return false, err
			}
			blocksChanged = blocksChanged || c
		}
		if blocksChanged {
			m.set("content", blocks)
			msgsChanged = true
		}
	}
	if msgsChanged {
		req.set("messages", msgs)
		changed = true
	}
	return changed, nil
}

func (messagesCodec) response(mc *modelCall, resp object) (bool, error) {
	blocks, err := resp.objs("content")
	if err != nil {
		return false, fmt.Errorf("content: %w", err)
	}
	removed, kept := 0, 0
	for i, b := range blocks {
		if typ, _ := b.str("type"); typ != "tool_use" {
			continue
		}
		id, _ := b.str("id")
		name, _ := b.str("name")
		d := mc.decide(id, name, b["input"])
		if d.keep {
			kept++
			continue
		}
		removed++
		blocks[i] = object{"type": mustMarshal("text"), "text": mustMarshal(d.notice)}
	}
	if removed == 0 {
		return false, nil
	}
	resp.set("content", blocks)
	if sr, _ := resp.str("stop_reason"); sr == "tool_use" && kept == 0 {
		resp.set("stop_reason", "end_turn")
	}
	return true, nil
}

// messagesStream holds each tool_use content block from content_block_start to
// content_block_stop. While any block is held, later events are queued behind it so the
// order of blocks the agent sees never changes; when the last held block is decided the
// queue is flushed: an allowed block is replayed as received (its arguments are exactly
// the ones checked), a removed one becomes a text block at the same index carrying the
// notice. Indices therefore stay dense and unchanged.
type messagesStream struct {
	mc      *modelCall
	queue   []queued
	blocks  map[int]*heldBlock
	open    int // held blocks not yet stopped
	kept    int // tool_use blocks passed through
	removed int
	held    int64
	stopped bool
}

type queued struct {
	ev    sseEvent
	block int // index of the held block the event belongs to, or -1
	start bool
}

type heldBlock struct {
	id, name string
	input    []byte // content_block.input at start
	partial  bytes.Buffer
	deltas   bool
	done     bool
	decision decision
}

func (messagesCodec) stream(mc *modelCall) streamer {
	return &messagesStream{mc: mc, blocks: map[int]*heldBlock{}}
}

func (s *messagesStream) event(ev sseEvent, out *sseWriter) (bool, error) {
	data, err := parseObject(ev.data)
	if err != nil {
		return false, malformed("an event that is not a JSON object")
	}
	typ, _ := data.str("type")
	if ev.name != "" && typ != "" && ev.name != typ {
		return false, malformed("an event named %q whose type is %q", ev.name, typ)
	}
	if typ == "" {
		typ = ev.name
	}
	if ev.name == "" {
		ev.name = typ // the Anthropic SDK skips events without a name
	}
	index, hasIndex := data.int("index")
	switch typ {
	case "error":
		out.write(ev) // relayed; held blocks are dropped
		return true, nil
	case "ping":
		// A keep-alive carries nothing: forwarded at once, even while a tool_use block is held,
		// so the agent's connection never goes silent behind a long tool input.
		if len(data) == 1 {
			out.write(ev)
			return false, nil
		}
	case "message_start":
		// Content arrives in blocks; a message that starts with content would bypass them.
		if m, err := data.obj("message"); err != nil || m == nil {
			return false, malformed("message_start without a message")
		} else if blocks, err := m.objs("content"); err != nil || len(blocks) > 0 {
			return false, malformed("message_start with content already in it")
		}
	case "content_block_start":
		if !hasIndex {
			return false, malformed("content_block_start without an index")
		}
		cb, err := data.obj("content_block")
		if err != nil || cb == nil {
			return false, malformed("content_block_start without a content block")
		}
		if t, _ := cb.str("type"); t == "tool_use" {
			if s.blocks[index] != nil {
				return false, malformed("a second content_block_start for index %d", index)
			}
			b := &heldBlock{}
			b.id, _ = cb.str("id")
			b.name, _ = cb.str("name")
			b.input = cb["input"]
			s.blocks[index] = b
			s.open++
			s.queue = append(s.queue, queued{ev: ev, block: index, start: true})
			return false, nil
		}
	case "content_block_delta":
		if b := s.blocks[index]; hasIndex && b != nil {
			if b.done {
				return false, malformed("a delta for content block %d after its stop", index)
			}
			delta, _ := data.obj("delta")
			if dt, _ := delta.str("type"); dt == "input_json_delta" {
				pj, _ := delta.str("partial_json")
				b.partial.WriteString(pj)
				b.deltas = true
				s.held += int64(len(pj))
				if s.held > s.mc.g.cfg.MaxResponseBytes {
					return false, malformed("tool input larger than %d bytes", s.mc.g.cfg.MaxResponseBytes)
				}
			}
			s.queue = append(s.queue, queued{ev: ev, block: index})
			return false, nil
		}
	case "content_block_stop":
		if b := s.blocks[index]; hasIndex && b != nil {
			if b.done {
				return false, malformed("a second content_block_stop for index %d", index)
			}
			b.done = true
			s.open--
			s.queue = append(s.queue, queued{ev: ev, block: index})
			b.decision = s.decideBlock(b)
			if s.open == 0 {
				s.flush(out)
			}
			return false, nil
		}
	case "message_delta":
		if s.open > 0 {
			return false, malformed("message_delta while a tool_use block was still open")
		}
		s.flush(out)
		delta, err := data.obj("delta")
		if err != nil {
			return false, malformed("message_delta whose delta is not an object")
		}
		if sr, _ := delta.str("stop_reason"); sr == "tool_use" && s.kept == 0 && s.removed > 0 {
			delta.set("stop_reason", "end_turn")
			data.set("delta", delta)
			ev.data = data.bytes()
		}
	case "message_stop":
		if s.open > 0 {
			return false, malformed("message_stop while a tool_use block was still open")
		}
		s.flush(out)
		out.write(ev)
		s.stopped = true
		return true, nil
	}
	// Any other event must not carry a tool_use past the checks above (fail closed on event
	// types this gateway does not know).
	if cb, err := data.obj("content_block"); err != nil || (cb != nil && typ != "content_block_start") {
		return false, malformed("a %s event carrying a content block", typ)
	}
	if m, err := data.obj("message"); err != nil || (m != nil && hasToolUse(m)) || hasToolUse(data) {
		return false, malformed("a %s event carrying tool_use content", typ)
	}
	// message_delta (and any delta) repeats nothing the SDKs read today, but a client that
	// merged a delta's content would run a tool_use nobody checked: refuse one that carries any.
	if d, err := data.obj("delta"); err == nil && d != nil && hasToolUse(d) {
		return false, malformed("a %s event whose delta carries tool_use content", typ)
	}
	if s.open > 0 {
		s.queue = append(s.queue, queued{ev: ev, block: -1})
		return false, nil
	}
	out.write(ev)
	return false, nil
}

// decideBlock decides a complete tool_use block. Its arguments are the concatenated
// input_json_delta fragments or, without deltas, the start block's input; both at once
// would be ambiguous and is refused.
func (s *messagesStream) decideBlock(b *heldBlock) decision {
	args := b.input
	if b.deltas {
		if t := bytes.TrimSpace(b.input); len(t) > 0 && !bytes.Equal(t, []byte("{}")) && !isNull(t) {
			args = []byte("ambiguous input")
		} else {
			args = b.partial.Bytes()
		}
	}
	return s.mc.decide(b.id, b.name, args)
}

// flush writes the queue: allowed blocks as received, removed ones as text blocks.
func (s *messagesStream) flush(out *sseWriter) {
	for _, q := range s.queue {
		if q.block < 0 {
			out.write(q.ev)
			continue
		}
		b := s.blocks[q.block]
		if b.decision.keep {
			if q.start {
				s.kept++
			}
			out.write(q.ev)
			continue
		}
		if !q.start {
			continue
		}
		s.removed++
		out.write(sseEvent{name: "content_block_start", data: mustMarshal(map[string]any{
			"type": "content_block_start", "index": q.block, "content_block": map[string]any{"type": "text", "text": ""}})})
		out.write(sseEvent{name: "content_block_delta", data: mustMarshal(map[string]any{
			"type": "content_block_delta", "index": q.block, "delta": map[string]any{"type": "text_delta", "text": b.decision.notice}})})
		out.write(sseEvent{name: "content_block_stop", data: mustMarshal(map[string]any{
			"type": "content_block_stop", "index": q.block})})
	}
	s.queue = s.queue[:0]
}

func (s *messagesStream) end(out *sseWriter) error {
	if !s.stopped {
		return &streamError{status: 502, code: codeStreamIncomplete, msg: "the upstream stream ended before message_stop"}
	}
	return nil
}

// hasToolUse reports whether an object's content holds a tool_use block (or is neither absent,
// a string, nor an array of blocks, which cannot be checked).
func hasToolUse(o object) bool {
	if _, ok := o.str("content"); ok {
		return false
	}
	blocks, err := o.objs("content")
	if err != nil {
		return true
	}
	for _, b := range blocks {
		if t, _ := b.str("type"); t == "tool_use" {
			return true
		}
	}
	return false
}

func (s *messagesStream) nextSeq() int { return 0 }
