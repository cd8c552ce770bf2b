package e2e

import (
	"net/http"
	"os"
	"strings"
	"testing"
)

// The configuration in docs/llm-gateway.md is real: every ```yaml block of the guide, added to a
// fresh data directory's configuration, starts serve with the LLM gateway mounted.
func TestLLMGuideConfigurationStarts(t *testing.T) {
	doc, err := os.ReadFile("../docs/llm-gateway.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```yaml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("no yaml blocks in docs/llm-gateway.md")
	}
	env := []string{"OPENAI_API_KEY=sk-doc", "ANTHROPIC_API_KEY=sk-ant-doc", "AZURE_OPENAI_KEY=azure-doc"}
	for i, part := range blocks {
		block, _, ok := strings.Cut(part, "```")
		if !ok {
			t.Fatal("unterminated yaml block")
		}
		dir, _, _ := initData(t)
		appendConfig(t, dir, block)
		d := startServeEnv(t, dir, env)
		// Mounted: a model call without a credential is refused by the gateway, in the provider's
		// format, not by the router.
		resp, err := http.Post(d.url+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Portcullis-Error") != "gateway_unauthenticated" {
			t.Errorf("block %d: an unauthenticated model call answered %d %q, want the gateway's 401", i+1, resp.StatusCode, resp.Header.Get("X-Portcullis-Error"))
		}
		d.stop(t)
	}
}
