package mcp

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// blobNote is the _meta key that stands in, in the inspected and recorded copy of a result, for
// a binary blob taken out of it: {"bytes": N, "sha256": HEX}.
const blobNote = "portcullis/blob"

// A declared binary blob — the data of image and audio content, a resource's blob — is not
// text: the go-sdk has already decoded its base64 (a result whose blob is not base64 is an
// error before the gateway sees it), and an agent's client hands it to the model as an image or
// a sound, never as text to read. Running text detectors over its base64 finds only chance
// matches, at a cost that once made a 1.4 MB image take seconds. So blobs are taken out of the
// copy that is inspected, recorded and redacted, replaced by their size and digest, and put back
// into what the agent receives. What an attacker can hide in one — text drawn in an image, words
// spoken in audio, instructions in a PNG text chunk — no text detector would have read either;
// a policy that must not let images through says so by tool.

// heldBlob is one blob taken out of a result, in the order stripBlobs met it.
type heldBlob struct {
	data []byte
	sum  string // hex SHA-256, as in the note
}

// stripBlobs returns a copy of res (a *sdk.CallToolResult or *sdk.ReadResourceResult; anything
// else is returned as is) whose blobs are replaced by a note, and the blobs taken out.
func stripBlobs(res any) (any, []heldBlob) {
	var held []heldBlob
	note := func(m sdk.Meta, data []byte) sdk.Meta {
		sum := sha256.Sum256(data)
		out := make(sdk.Meta, len(m)+1)
		for k, v := range m {
			out[k] = v
		}
		h := hex.EncodeToString(sum[:])
		out[blobNote] = map[string]any{"bytes": len(data), "sha256": h}
		held = append(held, heldBlob{data: data, sum: h})
		return out
	}
	resource := func(rc *sdk.ResourceContents) *sdk.ResourceContents {
		if rc == nil || rc.Blob == nil {
			return rc
		}
		c := *rc
		c.Meta, c.Blob = note(rc.Meta, rc.Blob), nil
		return &c
	}
	switch r := res.(type) {
	case *sdk.CallToolResult:
		if r == nil {
			return res, nil
		}
		cp := *r
		cp.Content = make([]sdk.Content, len(r.Content))
		for i, c := range r.Content {
			switch c := c.(type) {
			case *sdk.ImageContent:
				x := *c
				x.Meta, x.Data = note(c.Meta, c.Data), nil
				cp.Content[i] = &x
			case *sdk.AudioContent:
				x := *c
				x.Meta, x.Data = note(c.Meta, c.Data), nil
				cp.Content[i] = &x
			case *sdk.EmbeddedResource:
				x := *c
				x.Resource = resource(c.Resource)
				cp.Content[i] = &x
			default:
				cp.Content[i] = c
			}
		}
		if held == nil {
			return res, nil
		}
		// A server may repeat its content in structuredContent (server-filesystem does): a
		// string there that is exactly a blob's base64 is that blob, and is replaced the same way.
		cp.StructuredContent = mapStrings(r.StructuredContent, blobStrings(held))
		return &cp, held
	case *sdk.ReadResourceResult:
		if r == nil {
			return res, nil
		}
		cp := *r
		cp.Contents = make([]*sdk.ResourceContents, len(r.Contents))
		for i, c := range r.Contents {
			cp.Contents[i] = resource(c)
		}
		if held == nil {
			return res, nil
		}
		return &cp, held
	}
	return res, nil
}

// restoreBlobs puts the blobs stripBlobs took out back into res, a result decoded from the
// (perhaps redacted) stripped copy, and drops the notes; the rest of each _meta stays as the
// inspection left it. It reports false when res does not have the blobs' places — then the
// result must be withheld.
func restoreBlobs(res any, held []heldBlob) bool {
	next, ok := 0, true
	put := func(m sdk.Meta) (sdk.Meta, []byte, bool) {
		// The note must be the one stripBlobs wrote for the next blob: an upstream's own
		// "portcullis/blob" key elsewhere cannot move a blob.
		n, _ := m[blobNote].(map[string]any)
		if n == nil || next >= len(held) || n["sha256"] != held[next].sum {
			ok = false
			return m, nil, false
		}
		data := held[next].data
		next++
		delete(m, blobNote)
		if len(m) == 0 {
			m = nil
		}
		return m, data, true
	}
	resource := func(rc *sdk.ResourceContents) {
		if rc == nil || rc.Meta[blobNote] == nil {
			return
		}
		if m, data, hit := put(rc.Meta); hit {
			rc.Meta, rc.Blob = m, data
		}
	}
	switch r := res.(type) {
	case *sdk.CallToolResult:
		back := map[string]string{}
		for _, h := range held {
			back[blobRef(h.sum)] = base64.StdEncoding.EncodeToString(h.data)
		}
		r.StructuredContent = mapStrings(r.StructuredContent, back)
		for _, c := range r.Content {
			switch c := c.(type) {
			case *sdk.ImageContent:
				c.Meta, c.Data, _ = put(c.Meta)
			case *sdk.AudioContent:
				c.Meta, c.Data, _ = put(c.Meta)
			case *sdk.EmbeddedResource:
				resource(c.Resource)
			}
		}
	case *sdk.ReadResourceResult:
		for _, c := range r.Contents {
			resource(c)
		}
	}
	return ok && next == len(held)
}

// blobRef is the string that stands in structuredContent for the blob with digest sum.
func blobRef(sum string) string { return "[" + blobNote + " sha256:" + sum + "]" }

// blobStrings maps each held blob's base64 to its reference.
func blobStrings(held []heldBlob) map[string]string {
	m := make(map[string]string, len(held))
	for _, h := range held {
		if len(h.data) > 0 {
			m[base64.StdEncoding.EncodeToString(h.data)] = blobRef(h.sum)
		}
	}
	return m
}

// mapStrings returns v (decoded JSON) with every string value that is a key of repl replaced by
// its value; containers are copied only where something changed, and v itself is never
// modified.
func mapStrings(v any, repl map[string]string) any {
	if len(repl) == 0 {
		return v
	}
	out, _ := replaceStrings(v, repl)
	return out
}

func replaceStrings(v any, repl map[string]string) (any, bool) {
	switch x := v.(type) {
	case string:
		if r, ok := repl[x]; ok {
			return r, true
		}
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			if n, changed := replaceStrings(e, repl); changed {
				if out == nil {
					out = make(map[string]any, len(x))
					for k2, e2 := range x {
						out[k2] = e2
					}
				}
				out[k] = n
			}
		}
		if out != nil {
			return out, true
		}
	case []any:
		var out []any
		for i, e := range x {
			if n, changed := replaceStrings(e, repl); changed {
				if out == nil {
					out = append([]any(nil), x...)
				}
				out[i] = n
			}
		}
		if out != nil {
			return out, true
		}
	}
	return v, false
}
