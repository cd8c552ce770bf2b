package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/jsonx"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// MaxBatchCalls bounds the calls of one POST /v1/decide/batch.
const MaxBatchCalls = 64

// batchParallel is how many calls of one batch are decided at once: their records then share
// the ledger's group commits instead of waiting for one fsync each in turn.
const batchParallel = 8

// batchRequest is the body of POST /v1/decide/batch: tool calls of one agent, authenticated
// once (the request's credential covers the whole body).
type batchRequest struct {
	// AgentID, when given, must be the authenticated agent (a cross-check, never a credential).
	AgentID string `json:"agent_id,omitempty"`
	// Calls are decided, recorded and answered each on its own; each is validated on its own
	// (a malformed call, or one with a duplicate key, is refused alone).
	Calls []json.RawMessage `json:"calls"`
}

// batchResult is one call's answer: its HTTP status as /v1/decide would give it, and its body.
type batchResult struct {
	Status int `json:"status"`
	decideResponse
}

type batchResponse struct {
	Results []batchResult `json:"results"`
}

func (s *Server) handleDecideBatch(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, ok := s.readRaw(w, r)
	if !ok {
		return
	}
	req, rf := readBatch(body, s.o.Limits.MaxDepth)
	if rf != nil {
		s.reject(w, http.StatusBadRequest, rf.code, rf.msg)
		return
	}
	switch n := len(req.Calls); {
	case n == 0:
		s.reject(w, http.StatusBadRequest, "bad_request", `"calls" must hold at least one call`)
		return
	case n > MaxBatchCalls:
		s.reject(w, http.StatusRequestEntityTooLarge, "too_many_calls", fmt.Sprintf("%d calls; the limit is %d per batch", n, MaxBatchCalls))
		return
	}
	creds := identity.CredentialsFromRequest(r, body)
	creds.ClaimedAgent = req.AgentID
	ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))

	// One authentication for the batch (a signed request's nonce is used once); a refused
	// credential is one recorded denial (no tool: none of the calls was read), answered as
	// /v1/decide answers it.
	agent, denial := s.admit(ctx, guard.Request{Source: "http", Credentials: creds})
	if denial != nil {
		s.answer(ctx, w, start, denial)
		return
	}
	results := make([]batchResult, len(req.Calls))
	sem := make(chan struct{}, batchParallel)
	var wg sync.WaitGroup
	for i, raw := range req.Calls {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i] = s.decideBatchCall(ctx, creds, agent, raw)
		})
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, batchResponse{Results: results})
}

// readBatch reads a batch's envelope: checkBody's checks, then DecodeEnvelope, in one pass as
// readDecide reads a decide body (the checks run only for a body that pass refused, and when
// they find nothing the pass's error is the answer: the body is not decoded twice).
func readBatch(body []byte, maxDepth int) (batchRequest, *refusal) {
	var req batchRequest
	if err := jsonx.DecodeEnvelopeDepth(body, &req, maxDepth); err != nil {
		return batchRequest{}, passRefusal(body, maxDepth, fmt.Errorf("invalid JSON body: %w", err))
	}
	return req, nil
}

// decideBatchCall validates, decides and answers one call of a batch. Every failure is this
// call's denial: the others are decided regardless.
func (s *Server) decideBatchCall(ctx context.Context, creds identity.Credentials, agent *identity.Agent, raw json.RawMessage) batchResult {
	start := time.Now()
	c, params, err := decodeCall(raw, true)
	if err != nil {
		return s.batchReject(http.StatusBadRequest, bodyCode(err), err.Error())
	}
	if c.Tool == "" {
		return s.batchReject(http.StatusBadRequest, "bad_request", `"tool" is required`)
	}
	if len(c.Params) == 0 {
		c.Params = json.RawMessage("{}")
	}
	if n := jsonx.CountValues(c.Params) - 1; n > s.o.Limits.MaxParams {
		return s.batchReject(http.StatusRequestEntityTooLarge, "too_many_params", fmt.Sprintf("params hold %d values; the limit is %d", n, s.o.Limits.MaxParams))
	}
	release, ok := s.slots.acquire(agent.ID)
	if !ok {
		return s.batchReject(http.StatusTooManyRequests, "too_many_concurrent", "too many concurrent requests for this agent")
	}
	defer release()
	if s.o.Limits.DecisionTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.o.Limits.DecisionTimeout)
		defer cancel()
	}
	greq := guard.Request{RequestID: c.RequestID, Source: "http", Credentials: creds, Agent: agent,
		UserToken: c.UserToken, AssertedUser: c.User, Tool: c.Tool, Params: c.Params, ParamsValue: params, ApprovalID: c.ApprovalID}
	status, resp := s.response(ctx, start, s.o.Decider.Check(ctx, greq))
	return batchResult{Status: status, decideResponse: resp}
}

func (s *Server) batchReject(status int, code, msg string) batchResult {
	s.metrics.rejected.WithLabelValues(code).Inc()
	return batchResult{Status: status, decideResponse: decideResponse{Decision: policy.Deny.String(), Error: &errorBody{Code: code, Message: msg}}}
}

// bodyCode is the code of a body strictDecode refused (see rejectBody).
func bodyCode(err error) string {
	switch {
	case errors.Is(err, jsonx.ErrDuplicateKey):
		return guard.CodeDuplicateKey
	case errors.Is(err, jsonx.ErrInvalidUTF8):
		return "invalid_utf8"
	case errors.Is(err, jsonx.ErrTooDeep):
		return "too_deep"
	}
	return "bad_request"
}

// Protocols are the HTTP versions the gateway serves on a listener at addr: HTTP/1.1, HTTP/2
// over TLS (ALPN), and HTTP/2 without TLS (h2c, prior knowledge) when the listener is on a
// loopback address — a sidecar or a local orchestrator multiplexes its calls on one connection
// without a TLS handshake, and nothing leaves the host in clear.
func Protocols(addr net.Addr) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		p.SetUnencryptedHTTP2(true)
	}
	return p
}
