package app

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"time"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/gateway/llm"
	"github.com/portcullis-ai/portcullis/internal/guard"
)

// llmRoutes mounts the LLM gateway's endpoints when upstreams are configured.
func (a *App) llmRoutes(cfg config.LLMConfig) (func(*http.ServeMux), error) {
	if len(cfg.Upstreams) == 0 {
		return nil, nil
	}
	ups := map[llm.Format]llm.Upstream{}
	for name, u := range cfg.Upstreams {
		// A key named but not set would send every request without a credential: the provider's
		// 401 on every call, and a gateway that looked configured. Refused at start.
		if u.APIKeyEnv != "" && os.Getenv(u.APIKeyEnv) == "" {
			return nil, fmt.Errorf("llm.upstreams.%s.api_key_env: the environment variable %s is not set", name, u.APIKeyEnv)
		}
		headers := maps.Clone(u.Headers)
		for h, env := range u.HeadersEnv {
			v := os.Getenv(env)
			if v == "" {
				return nil, fmt.Errorf("llm.upstreams.%s.headers_env.%s: the environment variable %s is not set", name, h, env)
			}
			if headers == nil {
				headers = map[string]string{}
			}
			headers[h] = v
		}
		ups[llm.Format(name)] = llm.Upstream{BaseURL: u.BaseURL, APIKey: os.Getenv(u.APIKeyEnv), Headers: headers}
	}
	gw, err := llm.New(llm.Config{Upstreams: ups, Timeout: cfg.Timeout, StreamIdleTimeout: cfg.StreamIdleTimeout,
		MaxRequestBytes: cfg.MaxRequestBytes, BlockedResult: cfg.BlockedResult, Observe: a.observeLLMCall},
		llm.Guarded(a.guard, a.cfg.LLMTrusted, llm.Observers{Decision: a.logDecision, Content: a.metrics.ObserveResult}))
	if err != nil {
		return nil, fmt.Errorf("llm gateway: %w", err)
	}
	return func(mux *http.ServeMux) {
		// Every other /v1/ path the decision API does not serve is the gateway's: the model list
		// passes through, anything else gets a 404 in the provider's own error format.
		mux.Handle("/v1/", gw)
	}, nil
}

// observeLLMCall counts and logs one model call through the LLM gateway, like a decision.
func (a *App) observeLLMCall(o llm.Outcome) {
	a.metrics.ObserveLLMCall(string(o.Format), o.Code)
	level := slog.LevelInfo
	switch {
	case o.Code == "ok":
	case o.Status >= 500 || (o.Upstream && o.Code != "client_gone"):
		level = slog.LevelWarn // the upstream failed, timed out, or a stream was cut
	}
	a.log.LogAttrs(context.Background(), level, "llm call", slog.String("model_call", o.ModelCallID),
		slog.String("agent", o.AgentID), slog.String("format", string(o.Format)), slog.Bool("stream", o.Stream),
		slog.String("code", o.Code), slog.Int("status", o.Status), slog.Duration("elapsed", o.Elapsed))
}

// logDecision counts and logs a tool call decided on the LLM path as /v1/decide does its own.
func (a *App) logDecision(ctx context.Context, d *guard.Decision, elapsed time.Duration) {
	a.metrics.ObserveDecision(d, elapsed)
	agentID := ""
	if d.Agent != nil {
		agentID = d.Agent.ID
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "decision", slog.String("source", "llm"), slog.String("decision_id", d.ID),
		slog.String("agent", agentID), slog.String("tool", d.Tool), slog.String("decision", d.Action.String()),
		slog.String("code", d.Code), slog.Any("cause", d.Err), slog.Duration("elapsed", elapsed))
}
