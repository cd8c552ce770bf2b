// Package server is the HTTP API: the decision API for orchestrators that run tools themselves
// (POST /v1/decide, POST /v1/outcome), health, readiness and Prometheus metrics. Every decision
// goes through guard; the server only turns HTTP into guard requests and guard answers into HTTP,
// enforcing request limits on the way. It must not name concrete stores (that is app's job).
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	segjson "github.com/segmentio/encoding/json"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/jsonx"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// Decider is the pipeline the server calls (guard.Guard). Admit authenticates a request's
// agent before the server spends anything on it; Check then decides with that agent.
type Decider interface {
	Admit(ctx context.Context, req guard.Request) (*identity.Agent, *guard.Decision)
	Check(ctx context.Context, req guard.Request) *guard.Decision
	CheckResult(ctx context.Context, o guard.Outcome) *guard.ResultDecision
}

// ApprovalWaiter long-polls an approval request until it resolves (approval.Engine).
type ApprovalWaiter interface {
	Get(ctx context.Context, id string) (approval.Request, error)
	Wait(ctx context.Context, id string) (approval.Request, error)
}

// Limits bound what one request may carry. Each is answered with a clear 4xx.
type Limits struct {
	MaxBodyBytes           int64
	MaxDepth               int
	MaxParams              int
	MaxConcurrencyPerAgent int
	DecisionTimeout        time.Duration
	// MaxApprovalWait bounds how long a decide request with wait_seconds may wait for an approval.
	MaxApprovalWait time.Duration
}

// Options assemble a Server.
type Options struct {
	Decider   Decider
	Approvals ApprovalWaiter // may be nil: wait_seconds is then ignored
	Limits    Limits
	// Ready reports whether the gateway can decide: a policy is loaded and the ledger is writable.
	Ready func() error
	// Degraded, when set, names what works only in part while the gateway can still decide (an
	// MCP upstream that is down): /readyz then answers 200 {"status": "degraded", "reason": ...}.
	Degraded func() string
	Metrics  *Metrics
	Logger   *slog.Logger
	// Extra registers further routes (approvals, MCP, LLM) on the same mux.
	Extra func(mux *http.ServeMux)
}

// Server serves the HTTP API.
type Server struct {
	o       Options
	log     *slog.Logger
	metrics *Metrics
	slots   *agentSlots
	mux     *http.ServeMux
}

// New returns a Server; o.Decider is required.
func New(o Options) *Server {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := o.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	if o.Ready == nil {
		o.Ready = func() error { return nil }
	}
	s := &Server{o: o, log: log, metrics: m, slots: newAgentSlots(o.Limits.MaxConcurrencyPerAgent), mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /v1/decide", s.handleDecide)
	s.mux.HandleFunc("POST /v1/decide/batch", s.handleDecideBatch)
	s.mux.HandleFunc("POST /v1/outcome", s.handleOutcome)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.handleReady)
	s.mux.Handle("GET /metrics", m.Handler())
	if o.Extra != nil {
		o.Extra(s.mux)
	}
	return s
}

// Handler returns the API's root handler.
func (s *Server) Handler() http.Handler { return s.mux }

// decideRequest is the body of POST /v1/decide.
type decideRequest struct {
	// AgentID, when given, must be the authenticated agent (a cross-check, never a credential).
	AgentID string          `json:"agent_id,omitempty"`
	Tool    string          `json:"tool"`
	Params  json.RawMessage `json:"params"`
	// UserToken is the invoking user's token from the organisation's identity provider.
	UserToken string `json:"user_token,omitempty"`
	// User is an asserted invoking user: believed only from agents trusted to assert users.
	User       *identity.AssertedUser `json:"user,omitempty"`
	ApprovalID string                 `json:"approval_id,omitempty"`
	// WaitSeconds, with ApprovalID, first waits (up to the gateway's limit) for the approval to be
	// resolved, then decides: the agent's long-poll.
	WaitSeconds int    `json:"wait_seconds,omitempty"`
	RequestID   string `json:"request_id,omitempty"`
	// SessionID names the session the call belongs to (what the agent has seen so far is
	// decided on); absent: the agent's default session.
	SessionID string `json:"session_id,omitempty"`
	// Context is free-form orchestrator context (session, trace); recorded nowhere else but logs.
	Context map[string]string `json:"context,omitempty"`
}

// decideResponse is the answer. For DENY, Message says only that the tool is unavailable.
type decideResponse struct {
	Decision   string `json:"decision"`
	DecisionID string `json:"decision_id,omitempty"`
	Message    string `json:"message,omitempty"`
	ApprovalID string `json:"approval_id,omitempty"`
	// OutcomeToken, on ALLOW and LOG, is what /v1/outcome must present for this decision.
	OutcomeToken string     `json:"outcome_token,omitempty"`
	Error        *errorBody `json:"error,omitempty"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (s *Server) handleDecide(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, ok := s.readRaw(w, r)
	if !ok {
		return
	}
	req, params, rf := readDecide(body, s.o.Limits.MaxDepth)
	if rf != nil {
		s.reject(w, http.StatusBadRequest, rf.code, rf.msg)
		return
	}
	if req.Tool == "" {
		s.reject(w, http.StatusBadRequest, "bad_request", `"tool" is required`)
		return
	}
	if len(req.Params) == 0 {
		req.Params = json.RawMessage("{}") // documented: params defaults to {}
	}
	// max_params counts the values inside params (keys and params itself are not values).
	if n := jsonx.CountValues(req.Params) - 1; n > s.o.Limits.MaxParams {
		s.reject(w, http.StatusRequestEntityTooLarge, "too_many_params", fmt.Sprintf("params hold %d values; the limit is %d", n, s.o.Limits.MaxParams))
		return
	}
	creds := identity.CredentialsFromRequest(r, body)
	creds.ClaimedAgent = req.AgentID
	greq := guard.Request{RequestID: req.RequestID, Source: "http", Credentials: creds,
		UserToken: req.UserToken, AssertedUser: req.User, Tool: req.Tool, Params: req.Params, ParamsValue: params, ApprovalID: req.ApprovalID, Session: req.SessionID}

	// A caller's trace context (traceparent) makes the decision a span of its trace.
	ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))

	// Authenticate before anything is spent on the caller. Key ids and approval ids are not
	// secret (the ledger, `keys list` and approval notices show them): a slot keyed by what a
	// request claims, or a wait on an approval it names, would let a caller who holds no
	// credential occupy an agent's slots. The agent authenticated here is the one Check decides
	// for and records: its credential is not verified twice (a signed request's nonce is single-use).
	agent, denial := s.admit(ctx, greq)
	if denial != nil {
		s.answer(ctx, w, start, denial)
		return
	}
	greq.Agent = agent
	release, ok := s.slots.acquire(agent.ID)
	if !ok {
		s.reject(w, http.StatusTooManyRequests, "too_many_concurrent", "too many concurrent requests for this agent")
		return
	}
	defer release()

	if req.ApprovalID != "" && req.WaitSeconds > 0 && s.o.Approvals != nil {
		s.waitForApproval(ctx, agent.ID, req.ApprovalID, time.Duration(req.WaitSeconds)*time.Second)
	}
	if s.o.Limits.DecisionTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.o.Limits.DecisionTimeout)
		defer cancel()
	}
	s.answer(ctx, w, start, s.o.Decider.Check(ctx, greq))
}

// admit authenticates the request's agent within the decision timeout.
func (s *Server) admit(ctx context.Context, req guard.Request) (*identity.Agent, *guard.Decision) {
	if s.o.Limits.DecisionTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.o.Limits.DecisionTimeout)
		defer cancel()
	}
	return s.o.Decider.Admit(ctx, req)
}

// answer writes a decision (or a denial from Admit) as the decide response.
func (s *Server) answer(ctx context.Context, w http.ResponseWriter, start time.Time, d *guard.Decision) {
	status, resp := s.response(ctx, start, d)
	writeJSON(w, status, resp)
}

// response is a decision's HTTP status and body, observed in the metrics and the log.
func (s *Server) response(ctx context.Context, start time.Time, d *guard.Decision) (int, decideResponse) {
	s.metrics.observeDecision(d, time.Since(start))
	resp := decideResponse{Decision: d.Action.String(), DecisionID: d.ID, Message: d.Message, ApprovalID: d.ApprovalID, OutcomeToken: d.OutcomeToken}
	status := http.StatusOK
	if d.Code != "" {
		status = statusFor(d.Code)
		msg := publicMessage(status)
		if d.Code == guard.CodeDuplicateKey && d.Err != nil {
			// The caller's own parameters: naming the repeated key reveals nothing of the policy.
			msg = d.Err.Error()
		}
		resp.Error = &errorBody{Code: d.Code, Message: msg}
	}
	agentID := ""
	if d.Agent != nil {
		agentID = d.Agent.ID
	}
	s.log.LogAttrs(ctx, levelFor(status), "decision", slog.String("decision_id", d.ID), slog.String("agent", agentID),
		slog.String("tool", d.Tool), slog.String("decision", resp.Decision), slog.String("code", d.Code),
		slog.Any("cause", d.Err), slog.Duration("elapsed", time.Since(start)))
	if err := callerGone(ctx); err != nil {
		// The decision is on the record (the guard writes it on its own context, whatever the
		// caller's deadline); the caller is gone or out of time, so the answer — which, if it
		// can still be written, is that record's decision — may never arrive.
		s.metrics.undelivered.WithLabelValues(resp.Decision).Inc()
		s.log.LogAttrs(context.WithoutCancel(ctx), slog.LevelWarn, "decision not delivered: the caller left before the answer",
			slog.String("decision_id", d.ID), slog.String("decision", resp.Decision), slog.Any("cause", err))
	}
	return status, resp
}

// waitForApproval blocks until the approval resolves, the wait ends or the client goes away. It
// waits only on a pending request of the authenticated agent's own; any other ID (unknown,
// resolved, another agent's) is not waited on. It decides nothing: the decision that follows
// re-evaluates the call and redeems the grant.
func (s *Server) waitForApproval(ctx context.Context, agentID, id string, wait time.Duration) {
	if wait > s.o.Limits.MaxApprovalWait {
		wait = s.o.Limits.MaxApprovalWait
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	ar, err := s.o.Approvals.Get(wctx, id)
	if err != nil || ar.Agent != agentID || ar.State != approval.Pending {
		return
	}
	_, _ = s.o.Approvals.Wait(wctx, id) // any outcome (resolved, timeout) leads to the decision
}

// outcomeRequest is the body of POST /v1/outcome.
type outcomeRequest struct {
	DecisionID string `json:"decision_id"`
	// OutcomeToken is the decision's outcome_token: it proves, at any replica, that the
	// decision was this agent's, for this tool, and is still open to report.
	OutcomeToken string          `json:"outcome_token"`
	Tool         string          `json:"tool,omitempty"`
	Ran          bool            `json:"ran"`
	Success      bool            `json:"success"`
	Error        string          `json:"error,omitempty"`
	DurationMS   int64           `json:"duration_ms,omitempty"`
	Result       json.RawMessage `json:"result,omitempty"`
	// SessionID, when given, must be the session the decision was made in.
	SessionID string `json:"session_id,omitempty"`
}

type outcomeResponse struct {
	DecisionID string          `json:"decision_id"`
	Action     string          `json:"action"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      *errorBody      `json:"error,omitempty"`
}

func (s *Server) handleOutcome(w http.ResponseWriter, r *http.Request) {
	var req outcomeRequest
	body, ok := s.decodeBody(w, r, &req)
	if !ok {
		return
	}
	if req.DecisionID == "" {
		s.reject(w, http.StatusBadRequest, "bad_request", `"decision_id" is required`)
		return
	}
	creds := identity.CredentialsFromRequest(r, body)
	rd := s.o.Decider.CheckResult(r.Context(), guard.Outcome{DecisionID: req.DecisionID, Token: req.OutcomeToken, Source: "http", Credentials: creds,
		Tool: req.Tool, Ran: req.Ran, Success: req.Success, Error: req.Error, DurationMS: req.DurationMS, Result: req.Result, Session: req.SessionID})
	s.metrics.results.WithLabelValues(string(rd.Action)).Inc()
	resp := outcomeResponse{DecisionID: req.DecisionID, Action: string(rd.Action), Result: rd.Result}
	status := http.StatusOK
	switch rd.Code {
	case "", guard.CodeResultBlocked:
	case guard.CodeResultTooLarge:
		// Withheld, not failed: the agent learns why (sizes only), as with a blocked result.
		resp.Error = &errorBody{Code: rd.Code, Message: rd.Err.Error()}
	default:
		status = statusFor(rd.Code)
		msg, ok := outcomeMessages[rd.Code]
		if !ok {
			msg = publicMessage(status)
		}
		resp.Error = &errorBody{Code: rd.Code, Message: msg}
	}
	if rd.Err != nil {
		s.log.LogAttrs(r.Context(), levelFor(status), "outcome", slog.String("decision_id", req.DecisionID),
			slog.String("action", string(rd.Action)), slog.String("code", rd.Code), slog.Any("cause", rd.Err))
	}
	writeJSON(w, status, resp)
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	if err := s.o.Ready(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
		return
	}
	if s.o.Degraded != nil {
		if why := s.o.Degraded(); why != "" {
			writeJSON(w, http.StatusOK, map[string]string{"status": "degraded", "reason": why})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// readBody reads a bounded body and checks it is valid UTF-8 and not nested deeper than allowed.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, ok := s.readRaw(w, r)
	if !ok || !s.checkBody(w, body) {
		return nil, false
	}
	return body, true
}

// readRaw reads a bounded JSON body, not yet checked.
func (s *Server) readRaw(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if !jsonMediaType(r.Header.Values("Content-Type")) {
		s.reject(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send application/json")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.o.Limits.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.reject(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body exceeds %d bytes", s.o.Limits.MaxBodyBytes))
		} else {
			s.reject(w, http.StatusBadRequest, "bad_request", "could not read the body")
		}
		return nil, false
	}
	return body, true
}

// checkBody refuses (answering 400) a body that is not valid UTF-8 or is nested deeper than
// allowed.
func (s *Server) checkBody(w http.ResponseWriter, body []byte) bool {
	if rf := bodyRefusal(body, s.o.Limits.MaxDepth); rf != nil {
		s.reject(w, http.StatusBadRequest, rf.code, rf.msg)
		return false
	}
	return true
}

// refusal is why a body was refused: its code and message.
type refusal struct{ code, msg string }

// bodyRefusal is checkBody's verdict: nil, or why body is refused.
func bodyRefusal(body []byte, maxDepth int) *refusal {
	if !utf8.Valid(body) {
		return &refusal{"invalid_utf8", "the body is not valid UTF-8"}
	}
	if d := jsonx.Depth(body); d > maxDepth {
		return &refusal{"too_deep", fmt.Sprintf("JSON nested %d deep; the limit is %d", d, maxDepth)}
	}
	return nil
}

// readDecide reads a decide body: checkBody's checks, then decodeCall. One pass does both — a
// body decodeCallDepth accepts is valid UTF-8 and no deeper than maxDepth — so the checks run
// only for a body it refused, and give it the code it always got when they refuse it too.
// When they do not, the pass's own error is the answer: on a body that is valid UTF-8 and no
// deeper than maxDepth, decodeCall is the same decoder reaching the same error, and decoding a
// refused body again — before authentication — would double what a sender can make it cost.
func readDecide(body []byte, maxDepth int) (decideRequest, map[string]any, *refusal) {
	req, params, err := decodeCallDepth(body, false, maxDepth)
	if err != nil {
		return decideRequest{}, nil, passRefusal(body, maxDepth, err)
	}
	return req, params, nil
}

// passRefusal is the answer to a body the one-pass decoder refused with err: checkBody's code
// when its checks refuse the body too (the code such a body always got), else err's own.
func passRefusal(body []byte, maxDepth int, err error) *refusal {
	if rf := bodyRefusal(body, maxDepth); rf != nil {
		return rf
	}
	return &refusal{bodyCode(err), err.Error()}
}

// jsonMediaType accepts a request without Content-Type, or with exactly one that is
// application/json or a structured +json type (RFC 6839, e.g. application/merge-patch+json), with
// no parameter but charset=utf-8. A prefix test would take application/jsonfoo or
// application/json-seq; a second header, or a charset that is not UTF-8, would have the body read
// differently by a proxy or tool in front of the gateway than by the gateway itself.
func jsonMediaType(values []string) bool {
	switch len(values) {
	case 0:
		return true
	case 1:
	default:
		return false
	}
	mt, params, err := mime.ParseMediaType(values[0])
	if err != nil {
		return false
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return false
		}
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json") && len(mt) > len("application/+json"))
}

// decodeBody reads a bounded body and strictly decodes it into v, answering 4xx itself when it
// cannot; it returns the raw bytes (signed requests are verified over them).
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) ([]byte, bool) {
	body, ok := s.readBody(w, r)
	if !ok {
		return nil, false
	}
	if err := strictDecode(body, v); err != nil {
		s.rejectBody(w, err)
		return nil, false
	}
	return body, true
}

// rejectBody answers a body strictDecode refused, with the code of what was wrong.
// A duplicate key's message names the JSON path of the repeated key.
func (s *Server) rejectBody(w http.ResponseWriter, err error) {
	s.reject(w, http.StatusBadRequest, bodyCode(err), err.Error())
}

func (s *Server) reject(w http.ResponseWriter, status int, code, msg string) {
	s.metrics.rejected.WithLabelValues(code).Inc()
	writeJSON(w, status, decideResponse{Decision: policy.Deny.String(), Error: &errorBody{Code: code, Message: msg}})
}

// strictDecode decodes exactly one JSON value into v, refusing unknown fields, fields whose name
// differs only by case, repeated keys at any depth (params included), invalid UTF-8 and
// trailing data: the body is read one way only.
func strictDecode(body []byte, v any) error {
	if err := jsonx.DecodeStrict(body, v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	return nil
}

// statusFor maps a denial code to an HTTP status. The table names every code the guard and
// identity can give (TestStatusForIsExhaustive keeps it so); a code it does not know is a bug,
// answered 500 rather than guessed as a failed login.
func statusFor(code string) int {
	if st, ok := statusOf[code]; ok {
		return st
	}
	return http.StatusInternalServerError
}

var statusOf = map[string]int{
	// Malformed requests. An ambiguous request (two credentials, two Authorization headers) is
	// malformed, not a failed login: it is refused whatever the credentials are worth.
	guard.CodeMalformed:                           http.StatusBadRequest,
	guard.CodeDuplicateKey:                        http.StatusBadRequest,
	guard.CodeInvalidToolName:                     http.StatusBadRequest,
	identity.Code(identity.ErrAmbiguous):          http.StatusBadRequest,
	identity.Code(identity.ErrMalformed):          http.StatusUnauthorized,
	guard.CodeUnauthenticated:                     http.StatusUnauthorized,
	identity.Code(identity.ErrMissing):            http.StatusUnauthorized,
	identity.Code(identity.ErrInvalid):            http.StatusUnauthorized,
	identity.Code(identity.ErrExpired):            http.StatusUnauthorized,
	identity.Code(identity.ErrNotYetValid):        http.StatusUnauthorized,
	identity.Code(identity.ErrRevoked):            http.StatusUnauthorized,
	identity.Code(identity.ErrWrongAudience):      http.StatusUnauthorized,
	identity.Code(identity.ErrLifetime):           http.StatusUnauthorized,
	identity.Code(identity.ErrReplay):             http.StatusUnauthorized,
	identity.Code(identity.ErrStale):              http.StatusUnauthorized,
	identity.Code(identity.ErrUnknownAgent):       http.StatusUnauthorized,
	identity.Code(identity.ErrAgentMismatch):      http.StatusUnauthorized,
	identity.Code(identity.ErrKeyNotFound):        http.StatusUnauthorized,
	identity.Code(identity.ErrKeyLimit):           http.StatusUnauthorized,
	identity.Code(nil):                            http.StatusUnauthorized, // identity_error: unclassified, still a failed login
	guard.CodeUserInvalid:                         http.StatusForbidden,
	identity.Code(identity.ErrUserInvalid):        http.StatusForbidden,
	identity.Code(identity.ErrUntrustedAssertion): http.StatusForbidden,
	guard.CodeOutcomeToken:                        http.StatusForbidden,
	guard.CodeNotProposed:                         http.StatusForbidden,
	guard.CodeUnknownDecision:                     http.StatusNotFound,
	guard.CodeOutcomeTokenExpired:                 http.StatusGone,
	guard.CodeOutcomeReported:                     http.StatusConflict,
	guard.CodeTooManyPending:                      http.StatusTooManyRequests,
	// The gateway cannot decide safely now: a store, the policy or a detector is down.
	identity.Code(identity.ErrUnavailable): http.StatusServiceUnavailable,
	guard.CodeLedger:                       http.StatusServiceUnavailable,
	guard.CodeNoPolicy:                     http.StatusServiceUnavailable,
	guard.CodeBehavior:                     http.StatusServiceUnavailable,
	guard.CodeSession:                      http.StatusServiceUnavailable,
	guard.CodeSessionInvalid:               http.StatusBadRequest,
	guard.CodeApproval:                     http.StatusServiceUnavailable,
	guard.CodeInspection:                   http.StatusServiceUnavailable,
	guard.CodeOutcomeClaims:                http.StatusServiceUnavailable,
	guard.CodeInternal:                     http.StatusInternalServerError,
}

// outcomeMessages say why an outcome was refused for its binding to the decision. They name
// nothing the agent did not send.
var outcomeMessages = map[string]string{
	guard.CodeOutcomeToken:        "outcome_token is missing, malformed, or not this decision's",
	guard.CodeOutcomeTokenExpired: "the decision is too old to report on",
	guard.CodeUnknownDecision:     "no such allowed decision for this agent and tool",
	guard.CodeOutcomeReported:     "this decision's outcome was already reported",
}

// publicMessage is the text an error answer carries: the status only, never the internal cause.
func publicMessage(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication failed"
	case http.StatusForbidden:
		return "the invoking user could not be verified"
	case http.StatusServiceUnavailable:
		return "the gateway cannot decide right now; the call is denied"
	default:
		return strings.ToLower(http.StatusText(status))
	}
}

func levelFor(status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelError
	case status >= 400:
		return slog.LevelWarn
	default:
		return slog.LevelInfo
	}
}

// writeJSON answers v as JSON and a newline, as encoding/json's Encoder writes it. The decide
// answers, written once per request and made of strings and integers only, are written by
// segmentio's encoder, without encoding/json's reflection: the same bytes for those types
// (TestWriteJSONMatchesStdlib). Anything else keeps encoding/json, which segmentio's does not
// match for every type (a time.Duration as text, omitzero ignored).
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	switch v.(type) {
	case decideResponse, batchResponse:
		_ = segjson.NewEncoder(w).Encode(v) // the client went away; nothing to do
	default:
		_ = json.NewEncoder(w).Encode(v)
	}
}

// agentSlots bounds concurrent requests per authenticated agent so one agent cannot take the
// gateway's capacity. Slots are keyed by agent id, and taken only after authentication.
type agentSlots struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

func newAgentSlots(max int) *agentSlots { return &agentSlots{max: max, n: map[string]int{}} }

func (a *agentSlots) acquire(key string) (release func(), ok bool) {
	if a.max <= 0 {
		return func() {}, true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[key] >= a.max {
		return nil, false
	}
	a.n[key]++
	return func() {
		a.mu.Lock()
		if a.n[key]--; a.n[key] <= 0 {
			delete(a.n, key)
		}
		a.mu.Unlock()
	}, true
}

// callerGone is ctx.Err(), or DeadlineExceeded once the deadline has passed even if the
// context's timer has not fired yet: on a starved machine the timer runs late, and a decision
// answered after its deadline is not delivered in time whatever the timer says.
func callerGone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}
