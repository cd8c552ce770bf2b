package app

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/config"
)

// llmGateway is floodGateway (other-agent holds every call for approval) with the LLM gateway's
// three formats pointed at upstream and the approver scoped to every agent.
func llmGateway(t *testing.T, upstream string) (g *gateway, otherKey, approverKey string) {
	t.Helper()
	return llmGateway2(t, upstream, nil)
}

// llmGateway2 is llmGateway with edit applied to the configuration last.
func llmGateway2(t *testing.T, upstream string, edit func(*config.Config)) (g *gateway, otherKey, approverKey string) {
	t.Helper()
	t.Setenv("TEST_PROVIDER_KEY", "sk-provider-secret")
	return floodGateway(t, func(cfg *config.Config) {
		cfg.LLM.Upstreams = map[string]config.LLMUpstream{
			"chat_completions": {BaseURL: upstream + "/v1", APIKeyEnv: "TEST_PROVIDER_KEY"},
			"responses":        {BaseURL: upstream + "/v1", APIKeyEnv: "TEST_PROVIDER_KEY"},
			"messages":         {BaseURL: upstream + "/v1", APIKeyEnv: "TEST_PROVIDER_KEY"},
		}
		cfg.Approvals.Approvers[0].Scopes = allScopes
		if edit != nil {
			edit(cfg)
		}
	})
}

// postLLM sends a model call through the gateway as the agent with key.
func (g *gateway) postLLM(path, key, body string) (int, http.Header, string) {
	g.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
