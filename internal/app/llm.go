package app

import (
	"fmt"
	"net/http"
	"os"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/gateway/llm"
)

// llmRoutes mounts the LLM gateway's endpoints when upstreams are configured.
func (a *App) llmRoutes(cfg config.LLMConfig) (func(*http.ServeMux), error) {
	if len(cfg.Upstreams) == 0 {
		return nil, nil
	}
	ups := map[llm.Format]llm.Upstream{}
	for name, u := range cfg.Upstreams {
		ups[llm.Format(name)] = llm.Upstream{BaseURL: u.BaseURL, APIKey: os.Getenv(u.APIKeyEnv), Headers: u.Headers}
	}
	gw, err := llm.New(llm.Config{Upstreams: ups, Timeout: cfg.Timeout, StreamIdleTimeout: cfg.StreamIdleTimeout,
		MaxRequestBytes: cfg.MaxRequestBytes}, llm.Guarded(a.guard, a.cfg.LLMTrusted))
	if err != nil {
		return nil, fmt.Errorf("llm gateway: %w", err)
	}
	return func(mux *http.ServeMux) {
		for _, p := range []string{"/v1/chat/completions", "/v1/responses", "/v1/messages"} {
			mux.Handle("POST "+p, gw)
		}
	}, nil
}
