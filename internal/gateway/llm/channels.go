package llm

import (
	"encoding/json"
	"net/http"
)

// Every channel of a request that carries text to the model is inspected; one the gateway cannot
// read is refused (400 content_unsupported), never passed uninspected. A provider that adds a
// content part, a block or an input item type carrying text would otherwise open a channel around
// inspection the day it ships. The kinds below are the whole list of what is known: a type
// missing from its table is refused.

// partKind says what a content part (a block, an input part) of one type carries.
type partKind int

const (
	unknownPart  partKind = iota // not known: refused
	opaquePart                   // image, audio, file, container upload: not text, passed uninspected
	textPart                     // its "text" member is inspected
	documentPart                 // Anthropic document: title, context and a text or content source
	searchPart                   // Anthropic search_result: title and its text blocks
)

type partKinds map[string]partKind

// The content part types of each channel.
var (
	chatUserParts  = partKinds{"text": textPart, "image_url": opaquePart, "input_audio": opaquePart, "file": opaquePart}
	chatTextParts  = partKinds{"text": textPart}
	respInputParts = partKinds{"input_text": textPart, "input_image": opaquePart, "input_file": opaquePart, "input_audio": opaquePart}
	msgsTextBlocks = partKinds{"text": textPart}
	// A user turn: its own text, documents and search results it attaches, and tool results.
	msgsUserBlocks = partKinds{"text": textPart, "image": opaquePart, "document": documentPart, "search_result": searchPart,
		"container_upload": opaquePart}
	// What a tool_result may hold.
	msgsResultBlocks = partKinds{"text": textPart, "image": opaquePart, "document": documentPart, "search_result": searchPart}
	// A document's "content" source.
	msgsSourceBlocks = partKinds{"text": textPart, "image": opaquePart}
)

// unsupported refuses content the gateway cannot inspect.
func unsupported(format string, args ...any) *httpError {
	e := badRequest(format, args...)
	e.code = codeContentUnknown
	e.msg += ": the gateway inspects every text sent to the model and refuses what it cannot read"
	return e
}

// documentRole is the role under which an attached document is inspected: as a tool result when it
// came in one, otherwise as a document — third-party text, inspected like a tool's result.
func documentRole(role string) string {
	if role == "tool" {
		return role
	}
	return "document"
}

// inspectParts inspects a content array in place by kinds; an unknown part type is refused.
func (mc *modelCall) inspectParts(parts []object, role, toolCallID string, kinds partKinds) (bool, error) {
	changed := false
	for _, p := range parts {
		t, _ := p.str("type")
		var c bool
		var err error
		switch kinds[t] {
		case opaquePart:
			continue
		case textPart:
			c, err = mc.inspectString(p, "text", role, toolCallID)
		case documentPart:
			c, err = mc.inspectDocument(p, documentRole(role), toolCallID)
		case searchPart:
			c, err = mc.inspectSearchResult(p, documentRole(role), toolCallID)
		default:
			return false, unsupported("%s content of type %q", role, t)
		}
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	return changed, nil
}

// inspectString inspects o[key] when it is present: a string, or refused.
func (mc *modelCall) inspectString(o object, key, role, toolCallID string) (bool, error) {
	if !o.has(key) {
		return false, nil
	}
	s, ok := o.str(key)
	if !ok {
		return false, unsupported("%s: %s must be a string", role, key)
	}
	got, err := mc.inspect(role, toolCallID, s)
	if err != nil || got == s {
		return false, err
	}
	o.set(key, got)
	return true, nil
}

// inspectValue inspects a content value that is either a string or an array of parts, and
// stores it back into o[key] if redacted.
func (mc *modelCall) inspectValue(o object, key, role, toolCallID string, kinds partKinds) (bool, error) {
	if !o.has(key) {
		return false, nil
	}
	if _, ok := o.str(key); ok {
		return mc.inspectString(o, key, role, toolCallID)
	}
	parts, err := o.objs(key)
	if err != nil {
		return false, badRequest("%s: must be a string or an array of content parts", key)
	}
	changed, err := mc.inspectParts(parts, role, toolCallID, kinds)
	if err != nil || !changed {
		return false, err
	}
	o.set(key, parts)
	return true, nil
}

// inspectObjects inspects the string members keys of every object of the array o[key].
func (mc *modelCall) inspectObjects(o object, key, role, toolCallID string, keys ...string) (bool, error) {
	if !o.has(key) {
		return false, nil
	}
	elems, err := o.objs(key)
	if err != nil {
		return false, unsupported("%s: %s must be an array of objects", role, key)
	}
	changed := false
	for _, e := range elems {
		for _, k := range keys {
			c, err := mc.inspectString(e, k, role, toolCallID)
			if err != nil {
				return false, err
			}
			changed = changed || c
		}
	}
	if changed {
		o.set(key, elems)
	}
	return changed, nil
}

// inspectDocument inspects an Anthropic document block: its title and context, and a text source's
// data or a content source's blocks. A PDF (base64, url, file) is not text and passes, like an image.
func (mc *modelCall) inspectDocument(b object, role, toolCallID string) (bool, error) {
	changed := false
	for _, k := range []string{"title", "context"} {
		c, err := mc.inspectString(b, k, role, toolCallID)
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	src, err := b.obj("source")
	if err != nil || src == nil {
		return false, unsupported("a document without a source object")
	}
	var c bool
	switch t, _ := src.str("type"); t {
	case "text":
		c, err = mc.inspectString(src, "data", role, toolCallID)
	case "content":
		c, err = mc.inspectValue(src, "content", role, toolCallID, msgsSourceBlocks)
	case "base64", "url", "file":
		if mt, _ := src.str("media_type"); t == "base64" && mt != "application/pdf" {
			// A base64 source of plain text is text: refused rather than decoded here.
			return false, unsupported("a base64 document of media type %q", mt)
		}
	default:
		return false, unsupported("a document source of type %q", t)
	}
	if err != nil {
		return false, err
	}
	if c {
		b.set("source", src)
	}
	return changed || c, nil
}

// inspectSearchResult inspects an Anthropic search_result block: its title and text blocks (its
// source is a URL the model reads too, so it is inspected as well).
func (mc *modelCall) inspectSearchResult(b object, role, toolCallID string) (bool, error) {
	changed := false
	for _, k := range []string{"title", "source"} {
		c, err := mc.inspectString(b, k, role, toolCallID)
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	parts, err := b.objs("content")
	if err != nil {
		return false, unsupported("search_result content must be an array of text blocks")
	}
	c, err := mc.inspectParts(parts, role, toolCallID, msgsTextBlocks)
	if err != nil {
		return false, err
	}
	if c {
		b.set("content", parts)
	}
	return changed || c, nil
}

// inspectRaw inspects a JSON value that has no single text member (an MCP server's tool list) as
// its compact JSON text. It passes or is refused: a redaction could not be put back in place.
func (mc *modelCall) inspectRaw(role, toolCallID string, v json.RawMessage) error {
	if isNull(v) {
		return nil
	}
	got, err := mc.inspect(role, toolCallID, string(v))
	if err != nil {
		return err
	}
	if got != string(v) {
		return &httpError{status: http.StatusBadRequest, code: codeContentBlocked,
			msg: "a " + role + " value in the conversation carries content the gateway would redact but cannot rewrite in place"}
	}
	return nil
}
