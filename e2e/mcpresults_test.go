package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// wrapFilesystem starts `portcullis mcp -- node server-filesystem ROOT` with the filesystem
// policy (plus read_media_file) and config appended to the data directory's configuration.
func wrapFilesystem(t *testing.T, ctx context.Context, root, config string) *mcp.ClientSession {
	cs, _ := wrapFilesystemDir(t, ctx, root, config)
	return cs
}

// wrapFilesystemDir is wrapFilesystem, also returning the data directory.
func wrapFilesystemDir(t *testing.T, ctx context.Context, root, config string) (*mcp.ClientSession, string) {
	t.Helper()
	fsServer := filesystemServer(t)
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, strings.Replace(fsPolicy(root, ""), "read_text_file|", "read_text_file|read_media_file|", 1))
	if config != "" {
		appendConfig(t, dir, config)
	}
	cmd := exec.Command(binary(t), "mcp", "--data", dir, "--", "node", fsServer, root)
	cmd.Env = append(os.Environ(), "PORTCULLIS_API_KEY="+agentKey)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, stderr.String())
	}
	t.Cleanup(func() {
		cs.Close()
		auditVerify(t, dir)
	})
	return cs, dir
}

func fsRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestMCPResultRedactionFilesystem: one email in a file read through the real server-filesystem
// is cut out of both the text content and structuredContent — the rest of the text intact — and
// the result says how many values were redacted; get_file_info, whose dates once read as phone
// numbers, comes back whole.
func TestMCPResultRedactionFilesystem(t *testing.T) {
	root := fsRoot(t)
	note := "Quarterly report.\nContact alice@example.com for the figures.\nThanks."
	if err := os.WriteFile(filepath.Join(root, "note.txt"), []byte(note), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := wrapFilesystem(t, ctx, root, "")

	res := call(t, ctx, cs, "read_text_file", map[string]any{"path": filepath.Join(root, "note.txt")})
	want := strings.Replace(note, "alice@example.com", "[REDACTED:email]", 1)
	if res.IsError || text(res) != want {
		t.Errorf("read_text_file: isError %v, text %q; want %q", res.IsError, text(res), want)
	}
	sc, _ := json.Marshal(res.StructuredContent)
	if strings.Contains(string(sc), "alice@") || !strings.Contains(string(sc), "Contact [REDACTED:email] for the figures.") {
		t.Errorf("structuredContent: %s", sc)
	}
	if n, _ := res.Meta["portcullis/redacted"].(float64); n != 2 {
		t.Errorf("_meta: %v, want portcullis/redacted: 2 (one address, in content and structuredContent)", res.Meta)
	}

	res = call(t, ctx, cs, "get_file_info", map[string]any{"path": filepath.Join(root, "note.txt")})
	if got := text(res); res.IsError || strings.Contains(got, "REDACTED") || !strings.Contains(got, "modified:") {
		t.Errorf("get_file_info: isError %v, %q", res.IsError, got)
	}
	if _, ok := res.Meta["portcullis/redacted"]; ok {
		t.Errorf("get_file_info: _meta %v on an unredacted result", res.Meta)
	}
}

// TestMCPLargeResultFilesystem: server-filesystem returns a file's text twice (content and
// structuredContent), so a 3 MB file is a 6 MB result: over the default cap it is withheld saying
// so (not as an injection); with limits.max_outcome_result_bytes raised it passes whole.
func TestMCPLargeResultFilesystem(t *testing.T) {
	root := fsRoot(t)
	line := "The team's review found that shipping times improved; the figures are attached.\n"
	big := strings.Repeat(line, 3_000_000/len(line))
	if err := os.WriteFile(filepath.Join(root, "big.txt"), []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	t.Run("default cap", func(t *testing.T) {
		cs := wrapFilesystem(t, ctx, root, "")
		res := call(t, ctx, cs, "read_text_file", map[string]any{"path": filepath.Join(root, "big.txt")})
		if got := text(res); !res.IsError || !strings.Contains(got, "result too large to inspect: ") || !strings.Contains(got, " bytes > 4194304") {
			t.Errorf("isError %v, %.200q; want withheld as too large", res.IsError, got)
		}
	})
	t.Run("raised cap", func(t *testing.T) {
		cs := wrapFilesystem(t, ctx, root, "limits:\n  max_outcome_result_bytes: 16777216\n")
		start := time.Now()
		res := call(t, ctx, cs, "read_text_file", map[string]any{"path": filepath.Join(root, "big.txt")})
		t.Logf("3 MB read through the gateway: %v", time.Since(start))
		if res.IsError || text(res) != big {
			t.Errorf("isError %v, %d bytes of text; want the whole file", res.IsError, len(text(res)))
		}
	})
}

// TestMCPBlobResultFilesystem: an image's base64 data is not text; a 1.4 MB PNG read through
// server-filesystem's read_media_file passes intact, in time proportional to its size.
func TestMCPBlobResultFilesystem(t *testing.T) {
	root := fsRoot(t)
	png := make([]byte, 1_400_000)
	rand.Read(png)
	copy(png, "\x89PNG\r\n\x1a\n")
	if err := os.WriteFile(filepath.Join(root, "pic.png"), png, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	direct, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).Connect(ctx,
		&mcp.CommandTransport{Command: exec.Command("node", filesystemServer(t), root)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	start := time.Now()
	call(t, ctx, direct, "read_media_file", map[string]any{"path": filepath.Join(root, "pic.png")})
	tookDirect := time.Since(start)

	cs, dir := wrapFilesystemDir(t, ctx, root, "")
	start = time.Now()
	res := call(t, ctx, cs, "read_media_file", map[string]any{"path": filepath.Join(root, "pic.png")})
	took := time.Since(start)
	t.Logf("1.4 MB PNG: direct %v, through the gateway %v", tookDirect, took)
	if res.IsError || len(res.Content) != 1 {
		t.Fatalf("read_media_file: isError %v, %q", res.IsError, text(res))
	}
	img, ok := res.Content[0].(*mcp.ImageContent)
	if !ok || !bytes.Equal(img.Data, png) || img.MIMEType != "image/png" {
		t.Errorf("image content: %T, %d bytes, want the file", res.Content[0], len(img.Data))
	}
	if took > 5*time.Second {
		t.Errorf("took %v", took)
	}
	// The image was not read as text: the record holds its size and digest, not its base64.
	code, out, stderr := cli(t, nil, "audit", "search", "--data", dir, "--tool", "read_media_file")
	sum := sha256.Sum256(png)
	if code != 0 || !strings.Contains(out, hex.EncodeToString(sum[:])) || strings.Contains(out, base64.StdEncoding.EncodeToString(png[:300])) {
		t.Errorf("audit search (exit %d): %s %s", code, out, stderr)
	}
}

// TestMCPImageEverything: server-everything's get-tiny-image returns a PNG beside two texts;
// through the stdio wrapper it arrives byte for byte, as fast as direct.
func TestMCPImageEverything(t *testing.T) {
	filesystemServer(t) // skips when node_modules is absent
	everything, err := filepath.Abs("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	if err != nil {
		t.Fatal(err)
	}
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, "agent_id: report-generator-v1\ndefault_action: DENY\nrules:\n  - name: image\n    tool: get-tiny-image\n    action: ALLOW\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	image := func(cs *mcp.ClientSession) ([]byte, time.Duration) {
		start := time.Now()
		res := call(t, ctx, cs, "get-tiny-image", map[string]any{})
		took := time.Since(start)
		for _, c := range res.Content {
			if img, ok := c.(*mcp.ImageContent); ok {
				return img.Data, took
			}
		}
		t.Fatalf("no image: isError %v %q", res.IsError, text(res))
		return nil, 0
	}
	direct, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).Connect(ctx,
		&mcp.CommandTransport{Command: exec.Command("node", everything, "stdio")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	want, tookDirect := image(direct)

	cmd := exec.Command(binary(t), "mcp", "--data", dir, "--", "node", everything, "stdio")
	cmd.Env = append(os.Environ(), "PORTCULLIS_API_KEY="+agentKey)
	gw, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	got, tookGateway := image(gw)
	t.Logf("get-tiny-image (%d bytes): direct %v, through the gateway %v", len(want), tookDirect, tookGateway)
	if !bytes.Equal(got, want) || len(want) < 100 {
		t.Errorf("image through the gateway: %d bytes, want the server's %d", len(got), len(want))
	}
}
