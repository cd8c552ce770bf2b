package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/app"
)

// The README's quick-start requests give the decisions the README shows.
func TestReadmeQuickStart(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// A request line: curl ... --json 'BODY' ...; the next line: # {"decision":"X"...
	re := regexp.MustCompile(`(?m)^curl .*--json '(.*)' localhost:8080/v1/decide\n# (\{.*\})$`)
	examples := re.FindAllStringSubmatch(string(readme), -1)
	if len(examples) < 3 {
		t.Fatalf("found %d README examples, want at least 3", len(examples))
	}
	dir := t.TempDir()
	_, key, err := app.Init(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	d := startServe(t, dir)
	for _, ex := range examples {
		body := strings.ReplaceAll(ex[1], `'"'"'`, `'`) // undo the shell quoting of a single quote
		var want struct{ Decision string }
		if err := json.Unmarshal([]byte(strings.ReplaceAll(ex[2], "...", "")), &want); err != nil {
			t.Fatalf("README answer %q: %v", ex[2], err)
		}
		req, _ := http.NewRequest(http.MethodPost, d.url+"/v1/decide", bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Decision string }
		_ = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if got.Decision != want.Decision {
			t.Errorf("README request %s: got %s, README says %s", body, got.Decision, want.Decision)
		}
	}
}
