package llm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// A model call without a Portcullis-Session header is placed in a session by its conversation
// (docs/sessions.md):
//
//   - Responses, continued with previous_response_id: the session that response was served in.
//     The gateway links every Responses response it forwards to its session (shared by replicas
//     through the session store); a response it does not know (never served through it, or its
//     link ended) leaves the call in the agent's default session.
//   - Responses in a conversation the provider keeps (the conversation parameter): a session
//     named by the agent and the conversation's ID.
//   - any other call: a session named by a digest of the conversation's beginning — the agent, the
//     system (or developer, or instructions) text and the first user message — which the client
//     resends unchanged on every turn of a stateless conversation (Chat Completions, Messages).
//     Two conversations that begin alike share a session (stricter, never looser); a client that
//     rewrites the beginning of its conversation starts a new one.

// Conversations is implemented by a Checker that links Responses response IDs to sessions.
type Conversations interface {
	// LinkResponse records that responseID was served in c's session.
	LinkResponse(ctx context.Context, c Caller, responseID string) error
	// ContinuedSession returns the session responseID was served in; ok is false when the
	// gateway does not know the response.
	ContinuedSession(ctx context.Context, c Caller, responseID string) (session string, ok bool, err error)
}

// maxResponseIDBytes bounds a previous_response_id the gateway looks up (the session store's
// bound on a session ID).
const maxResponseIDBytes = 256

// responsesConversation is the ID of the provider-kept conversation a Responses call names
// ("conversation": "conv_…" or {"id": "conv_…"}), or "".
func responsesConversation(req object) string {
	if id, ok := req.str("conversation"); ok {
		return id
	}
	if c, _ := req.obj("conversation"); c != nil {
		id, _ := c.str("id")
		return id
	}
	return ""
}

// conversationSessionPrefix starts the session ID of a conversation named by its beginning.
const conversationSessionPrefix = "conv-"

// placeInSession sets the session of a call that named none. An error refuses the call.
func (mc *modelCall) placeInSession(req object) error {
	if mc.caller.Session != "" {
		return nil
	}
	if mc.format == Responses {
		// A conversation the provider keeps (the conversation parameter) is named by its ID
		// (conversationSession), however the turn continues it.
		if prev, _ := req.str("previous_response_id"); prev != "" && responsesConversation(req) == "" {
			if len(prev) > maxResponseIDBytes {
				return badRequest("previous_response_id: longer than %d bytes", maxResponseIDBytes)
			}
			conv, ok := mc.g.checker.(Conversations)
			if !ok {
				return nil
			}
			s, ok, err := conv.ContinuedSession(mc.ctx, mc.caller, prev)
			if err != nil {
				return err
			}
			if ok {
				mc.caller.Session = s
			}
			return nil
		}
	}
	mc.caller.Session = conversationSession(mc.format, mc.caller.AgentID, req)
	return nil
}

// linkResponse links a Responses response to the session it was served in. An error withholds
// the response: its next turn could not be placed in the session.
func (mc *modelCall) linkResponse(resp object) error {
	if mc.format != Responses {
		return nil
	}
	conv, ok := mc.g.checker.(Conversations)
	if !ok {
		return nil
	}
	id, _ := resp.str("id")
	if id == "" {
		return nil
	}
	return conv.LinkResponse(mc.ctx, mc.caller, id)
}

// conversationSession names a conversation by its beginning: the agent, the leading system text
// and the first user message, each compacted JSON as sent. It reads the turns only up to the
// first user message: its cost does not grow with the conversation.
func conversationSession(f Format, agent string, req object) string {
	h := sha256.New()
	var buf bytes.Buffer
	part := func(raw json.RawMessage) {
		buf.Reset()
		if json.Compact(&buf, raw) != nil {
			buf.Reset()
			buf.Write(raw)
		}
		h.Write([]byte{0})
		h.Write(buf.Bytes())
	}
	h.Write([]byte(f))
	h.Write([]byte{0})
	h.Write([]byte(agent))
	var turns json.RawMessage
	switch f {
	case ChatCompletions:
		turns = req["messages"]
	case Messages:
		part(req["system"])
		turns = req["messages"]
	case Responses:
		if id := responsesConversation(req); id != "" {
			h.Write([]byte("\x00conversation\x00" + id))
			return conversationSessionPrefix + hex.EncodeToString(h.Sum(nil)[:16])
		}
		part(req["instructions"])
		if s := req["input"]; len(s) > 0 && s[0] == '"' {
			part(s)
			return conversationSessionPrefix + hex.EncodeToString(h.Sum(nil)[:16])
		}
		turns = req["input"]
	}
	// The system turns, then the first user turn; what is not an array of turns names nothing
	// more (the codec refuses it).
	d := json.NewDecoder(bytes.NewReader(turns))
	if t, err := d.Token(); err == nil && t == json.Delim('[') {
		for d.More() {
			var turn struct {
				Role    string          `json:"role"`
				Content json.RawMessage `json:"content"`
			}
			if d.Decode(&turn) != nil {
				break
			}
			if turn.Role == "system" || turn.Role == "developer" {
				part(turn.Content)
				continue
			}
			if turn.Role == "user" {
				part(turn.Content)
				break
			}
		}
	}
	return conversationSessionPrefix + hex.EncodeToString(h.Sum(nil)[:16])
}
