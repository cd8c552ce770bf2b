package mcp

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestBlobsStrippedAndRestored: the inspected copy of a result carries no blob's base64 (content,
// embedded resource, or repeated in structuredContent), the original is untouched, and a copy
// decoded from it gets every blob back in its place.
func TestBlobsStrippedAndRestored(t *testing.T) {
	img, snd, bin := bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 300), []byte("RIFF....WAVE"), []byte{0, 1, 2, 3, 4, 5, 6, 7}
	b64 := base64.StdEncoding.EncodeToString(img)
	orig := &sdk.CallToolResult{
		Content: []sdk.Content{
			&sdk.TextContent{Text: "see the picture"},
			&sdk.ImageContent{Data: img, MIMEType: "image/png", Meta: sdk.Meta{"k": "v"}},
			&sdk.AudioContent{Data: snd, MIMEType: "audio/wav"},
			&sdk.EmbeddedResource{Resource: &sdk.ResourceContents{URI: "file:///x.bin", Blob: bin}},
		},
		StructuredContent: map[string]any{"content": []any{map[string]any{"type": "image", "data": b64}}},
	}
	stripped, held := stripBlobs(orig)
	if len(held) != 3 {
		t.Fatalf("held %d blobs, want 3", len(held))
	}
	raw, err := json.Marshal(stripped)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), b64[:40]) || !strings.Contains(string(raw), blobNote) {
		t.Errorf("inspected copy: %s", raw)
	}
	if !bytes.Equal(orig.Content[1].(*sdk.ImageContent).Data, img) || orig.StructuredContent.(map[string]any)["content"].([]any)[0].(map[string]any)["data"] != b64 {
		t.Error("the original result was changed")
	}
	var back sdk.CallToolResult
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !restoreBlobs(&back, held) {
		t.Fatal("restore failed")
	}
	want, _ := json.Marshal(orig)
	got, _ := json.Marshal(&back)
	if !bytes.Equal(want, got) {
		t.Errorf("restored:\n%s\nwant\n%s", got, want)
	}

	// A note that does not belong to the next blob (an upstream's own key, or blobs reordered)
	// fails the restore: the result is withheld.
	var spoof sdk.CallToolResult
	json.Unmarshal(raw, &spoof)
	spoof.Content[1].(*sdk.ImageContent).Meta[blobNote] = map[string]any{"sha256": "00"}
	if restoreBlobs(&spoof, held) {
		t.Error("a foreign note was accepted")
	}
	// No blobs: the result itself, nothing held.
	plain := &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "hi"}}}
	if s, h := stripBlobs(plain); s != any(plain) || h != nil {
		t.Errorf("plain result: %v %v", s, h)
	}
}
