package llm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// httpError is a refusal answered before any byte of the response was sent.
type httpError struct {
	status int
	code   string
	msg    string
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

func badRequest(format string, args ...any) *httpError {
	return &httpError{status: http.StatusBadRequest, code: codeInvalidRequest, msg: fmt.Sprintf(format, args...)}
}

// Causes of an upstream context cancellation, to tell a timeout from the agent hanging up.
var (
	errUpstreamTimeout = errors.New("upstream timed out")
	errStreamIdle      = errors.New("upstream stream idle")
)

// codec is one wire format: request rewriting, non-streamed response rewriting, and a
// per-response stream rewriter.
type codec interface {
	request(mc *modelCall, req object) (changed bool, err error)
	response(mc *modelCall, resp object) (changed bool, err error)
	stream(mc *modelCall) streamer
}

// streamer rewrites one upstream event stream. event writes zero or more events to out and
// reports whether the stream reached its terminal event; end is called when the upstream
// closes without one and reports whether that is a valid end.
type streamer interface {
	event(ev sseEvent, out *sseWriter) (done bool, err error)
	end(out *sseWriter) error
	// nextSeq is the sequence number the next event the gateway makes carries (Responses
	// numbers its events; the other formats do not, and answer 0).
	nextSeq() int
}

// streamError ends a stream that already started with an error event in the provider's format.
type streamError struct {
	status int
	code   string
	msg    string
}

func (e *streamError) Error() string { return e.code + ": " + e.msg }

func malformed(format string, args ...any) *streamError {
	return &streamError{status: http.StatusBadGateway, code: codeUpstreamMalform, msg: "the upstream sent " + fmt.Sprintf(format, args...)}
}

var codecs = map[Format]codec{
	ChatCompletions: chatCodec{},
	Responses:       responsesCodec{},
	Messages:        messagesCodec{},
}

// modelCall is one request through the gateway.
type modelCall struct {
	ctx    context.Context
	g      *Gateway
	format Format
	caller Caller
	id     string

	stream   bool   // the agent asked for a stream
	fresh    bool   // the text being inspected comes after the model's latest turn (Content.New)
	upstream bool   // the upstream was asked
	code     string // the error code a stream that already began ended with
	// removed are the Responses calls this model call removed (call_id → notice), remembered
	// under the response's ID for the conversation's next turn.
	removed      map[string]string
	removedOrder []removedCall
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics on an unusable source)
	return hex.EncodeToString(b[:])
}

// forwardedHeaders are the only agent request headers passed upstream: protocol options,
// never credentials or cookies.
var forwardedHeaders = []string{"Anthropic-Version", "Anthropic-Beta", "Openai-Beta", "Idempotency-Key"}

// relayedHeaders are the upstream response headers passed back to the agent: request IDs, and
// what the SDKs read to decide whether and when to retry.
var relayedHeaders = []string{"Retry-After", "Retry-After-Ms", "X-Should-Retry", "X-Request-Id", "Request-Id", "Openai-Processing-Ms"}

// relayedPrefixes are header name prefixes relayed the same way: the providers' rate-limit state.
var relayedPrefixes = []string{"X-Ratelimit-", "Anthropic-Ratelimit-"}

func relayHeaders(w http.ResponseWriter, h http.Header) {
	for _, k := range relayedHeaders {
		if v := h.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	for k, v := range h {
		for _, p := range relayedPrefixes {
			if strings.HasPrefix(k, p) && len(v) > 0 {
				w.Header().Set(k, v[0])
			}
		}
	}
}

// upstreamRequest builds a request to the upstream with the provider's credential and the
// protocol headers the agent sent, never the agent's own credential.
func upstreamRequest(ctx context.Context, r *http.Request, method, url string, body io.Reader, f Format, up upstream) (*http.Request, error) {
	ureq, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	for _, h := range forwardedHeaders {
		if v := r.Header.Values(h); len(v) > 0 {
			ureq.Header[h] = v
		}
	}
	for k, v := range up.headers {
		ureq.Header.Set(k, v)
	}
	ureq.Header.Set("Accept", "application/json")
	if f == Messages {
		if ureq.Header.Get("Anthropic-Version") == "" {
			ureq.Header.Set("Anthropic-Version", "2023-06-01")
		}
		if up.key != "" {
			ureq.Header.Set("X-Api-Key", up.key)
		}
	} else if up.key != "" {
		ureq.Header.Set("Authorization", "Bearer "+up.key)
	}
	return ureq, nil
}

// authenticate answers a refused credential; it reports whether the caller may go on.
func (g *Gateway) authenticate(w http.ResponseWriter, r *http.Request, mc *modelCall) bool {
	caller, err := g.checker.Authenticate(r)
	if errors.Is(err, ErrAmbiguousCredentials) {
		writeError(w, mc.format, http.StatusBadRequest, codeAmbiguous, "send one gateway credential, in one header")
		return false
	}
	if err != nil {
		writeError(w, mc.format, http.StatusUnauthorized, codeAuth, "the gateway credential was not accepted")
		return false
	}
	mc.caller = caller
	return true
}

// models passes GET /v1/models (and /v1/models/{id}) through to the upstream of the format the
// agent's SDK speaks: the list of models carries no conversation and no tool call.
func (g *Gateway) models(w http.ResponseWriter, r *http.Request, mc *modelCall) {
	up, ok := g.upstreams[mc.format]
	if !ok && mc.format == ChatCompletions {
		up, ok = g.upstreams[Responses]
	}
	if !ok {
		writeError(w, mc.format, http.StatusNotFound, codeNotFound, fmt.Sprintf("no upstream is configured for %s", mc.format))
		return
	}
	if !g.authenticate(w, r, mc) {
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(context.Canceled)
	deadline := time.AfterFunc(g.cfg.Timeout, func() { cancel(errUpstreamTimeout) })
	defer deadline.Stop()
	u := up.base + strings.TrimPrefix(r.URL.Path, "/v1")
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	ureq, err := upstreamRequest(ctx, r, http.MethodGet, u, nil, mc.format, up)
	if err != nil {
		writeError(w, mc.format, http.StatusBadGateway, codeUpstreamFailed, "could not build the upstream request")
		return
	}
	mc.upstream = true
	resp, err := g.client.Do(ureq)
	if err != nil {
		g.upstreamFailed(w, mc, ctx, err)
		return
	}
	defer resp.Body.Close()
	relayHeaders(w, resp.Header)
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		writeError(w, mc.format, http.StatusBadGateway, codeUpstreamRedirect, fmt.Sprintf("the upstream answered %d, a redirect; the gateway does not follow redirects", resp.StatusCode))
		return
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		g.relayUpstreamError(w, mc, ctx, resp)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, g.cfg.MaxResponseBytes+1))
	if err != nil {
		g.upstreamFailed(w, mc, ctx, err)
		return
	}
	if _, perr := parseObject(raw); perr != nil || int64(len(raw)) > g.cfg.MaxResponseBytes || !utf8.Valid(raw) {
		writeError(w, mc.format, http.StatusBadGateway, codeUpstreamMalform, "the upstream's model list is not a JSON object")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(raw)
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, mc *modelCall, up upstream) {
	f := mc.format
	if !g.authenticate(w, r, mc) {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxRequestBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, f, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("the request body is larger than %d bytes", g.cfg.MaxRequestBytes))
			return
		}
		writeError(w, f, http.StatusBadRequest, codeInvalidRequest, "could not read the request body")
		return
	}
	if !utf8.Valid(body) {
		writeError(w, f, http.StatusBadRequest, codeInvalidRequest, "the request body is not valid UTF-8")
		return
	}
	req, err := parseObject(body)
	if err != nil {
		writeError(w, f, http.StatusBadRequest, codeInvalidRequest, "the request body is not a JSON object")
		return
	}
	stream := false
	if v, ok := req["stream"]; ok && !isNull(v) {
		if json.Unmarshal(v, &stream) != nil {
			writeError(w, f, http.StatusBadRequest, codeInvalidRequest, "stream must be a boolean")
			return
		}
	}
	mc.stream = stream
	w.Header().Set("X-Portcullis-Model-Call", mc.id)
	if err := mc.placeInSession(req); err != nil {
		if he, ok := errors.AsType[*httpError](err); ok {
			writeError(w, f, he.status, he.code, he.msg)
			return
		}
		writeError(w, f, http.StatusServiceUnavailable, codeSession, "the gateway could not read the conversation's session")
		return
	}
	cd := codecs[f]
	changed, err := cd.request(mc, req)
	if err != nil {
		if he, ok := errors.AsType[*httpError](err); ok {
			writeError(w, f, he.status, he.code, he.msg)
			return
		}
		writeError(w, f, http.StatusBadRequest, codeInvalidRequest, err.Error())
		return
	}
	if changed {
		body = req.bytes()
	}

	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(context.Canceled)
	deadline := time.AfterFunc(g.cfg.Timeout, func() { cancel(errUpstreamTimeout) })
	defer deadline.Stop()

	ureq, err := upstreamRequest(ctx, r, http.MethodPost, up.url, bytes.NewReader(body), f, up)
	if err != nil {
		writeError(w, f, http.StatusBadGateway, codeUpstreamFailed, "could not build the upstream request")
		return
	}
	ureq.Header.Set("Content-Type", "application/json")
	if stream {
		ureq.Header.Set("Accept", "text/event-stream")
	}

	mc.upstream = true
	resp, err := g.client.Do(ureq)
	if err != nil {
		g.upstreamFailed(w, mc, ctx, err)
		return
	}
	defer resp.Body.Close()
	relayHeaders(w, resp.Header)
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		// Redirects are not followed (see New); neither is the 3xx relayed, which would hand the
		// agent a Location its SDK might follow with the agent's own credential.
		writeError(w, f, http.StatusBadGateway, codeUpstreamRedirect, fmt.Sprintf("the upstream answered %d, a redirect; the gateway does not follow redirects", resp.StatusCode))
		return
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		g.relayUpstreamError(w, mc, ctx, resp)
		return
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if stream {
		if mediaType != "text/event-stream" {
			writeError(w, f, http.StatusBadGateway, codeUpstreamMalform, fmt.Sprintf("the upstream answered a streamed request with %q, not an event stream", mediaType))
			return
		}
		deadline.Stop() // from here on the idle timeout bounds the stream
		g.serveStream(w, mc, cd, ctx, cancel, resp.Body)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, g.cfg.MaxResponseBytes+1))
	if err != nil {
		g.upstreamFailed(w, mc, ctx, err)
		return
	}
	if int64(len(raw)) > g.cfg.MaxResponseBytes {
		writeError(w, f, http.StatusBadGateway, codeUpstreamMalform, fmt.Sprintf("the upstream response is larger than %d bytes", g.cfg.MaxResponseBytes))
		return
	}
	out, err := parseObject(raw)
	if err != nil || !utf8.Valid(raw) {
		writeError(w, f, http.StatusBadGateway, codeUpstreamMalform, "the upstream response is not a JSON object")
		return
	}
	rewritten, err := cd.response(mc, out)
	if err != nil {
		writeError(w, f, http.StatusBadGateway, codeUpstreamMalform, "the upstream response is malformed: "+err.Error())
		return
	}
	if rewritten {
		raw = out.bytes()
	}
	mc.rememberRemoved(out)
	if err := mc.linkResponse(out); err != nil {
		writeError(w, f, http.StatusServiceUnavailable, codeSession, "the gateway could not record the conversation's session")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(raw)
}

// upstreamFailed answers a transport error: 504 for the gateway's timeout, 502 otherwise.
// When the agent itself went away there is nobody to answer.
func (g *Gateway) upstreamFailed(w http.ResponseWriter, mc *modelCall, ctx context.Context, err error) {
	f := mc.format
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errUpstreamTimeout):
		writeError(w, f, http.StatusGatewayTimeout, codeUpstreamTimeout, fmt.Sprintf("the upstream did not answer within %s", g.cfg.Timeout))
	case errors.Is(cause, context.Canceled):
		mc.code = "client_gone"
		return
	default:
		_ = err // the transport error names internal addresses; the agent gets the code only
		writeError(w, f, http.StatusBadGateway, codeUpstreamFailed, "the upstream could not be reached")
	}
}

// relayUpstreamError passes a provider error through in the provider's own format when it
// is well-formed JSON; a rejected provider key is the gateway's problem, not the agent's.
func (g *Gateway) relayUpstreamError(w http.ResponseWriter, mc *modelCall, ctx context.Context, resp *http.Response) {
	f := mc.format
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		g.upstreamFailed(w, mc, ctx, err)
		return
	}
	if resp.StatusCode == http.StatusUnauthorized {
		writeError(w, f, http.StatusBadGateway, codeUpstreamAuth, "the upstream rejected the gateway's provider credential")
		return
	}
	if _, err := parseObject(raw); err != nil || !utf8.Valid(raw) {
		writeError(w, f, http.StatusBadGateway, codeUpstreamMalform, fmt.Sprintf("the upstream answered %d with a body that is not a JSON error", resp.StatusCode))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(raw)
}

// serveStream copies an upstream event stream through the format's rewriter, flushing after
// every upstream event, bounded by the idle timeout. While nothing reaches the agent for
// KeepAlive (a tool call held until its arguments are complete, a model that thinks), an SSE
// comment does: proxies and load balancers that cut idle connections see traffic, and every
// SDK ignores comments.
func (g *Gateway) serveStream(w http.ResponseWriter, mc *modelCall, cd codec, ctx context.Context, cancel context.CancelCauseFunc, body io.Reader) {
	idle := time.AfterFunc(g.cfg.StreamIdleTimeout, func() { cancel(errStreamIdle) })
	defer idle.Stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	out := newSSEWriter(w)
	out.flush()
	st := cd.stream(mc)
	fail := func(err error) {
		se, ok := errors.AsType[*streamError](err)
		if !ok {
			switch cause := context.Cause(ctx); {
			case errors.Is(cause, errStreamIdle):
				se = &streamError{http.StatusGatewayTimeout, codeUpstreamTimeout, fmt.Sprintf("the upstream stream was silent for %s", g.cfg.StreamIdleTimeout)}
			case errors.Is(cause, errUpstreamTimeout):
				se = &streamError{http.StatusGatewayTimeout, codeUpstreamTimeout, "the upstream timed out"}
			case errors.Is(cause, context.Canceled):
				mc.code = "client_gone"
				return // the agent hung up
			case errors.Is(err, ErrEventTooLarge):
				se = &streamError{http.StatusBadGateway, codeUpstreamMalform, err.Error()}
			default:
				se = &streamError{http.StatusBadGateway, codeStreamIncomplete, "the upstream stream ended before it was complete"}
			}
		}
		mc.code = se.code
		out.write(streamErrorEvent(mc.format, se.status, se.code, se.msg, st.nextSeq()))
		out.flush()
	}
	type read struct {
		ev  sseEvent
		err error
	}
	events := make(chan read)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		in := newSSEReader(body, g.cfg.MaxEventBytes)
		for {
			ev, err := in.next()
			select {
			case events <- read{ev, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	keepAlive := time.NewTicker(g.cfg.KeepAlive)
	defer keepAlive.Stop()
	for {
		var rd read
		select {
		case <-keepAlive.C:
			if time.Since(out.last) >= g.cfg.KeepAlive {
				out.comment("keep-alive")
				out.flush()
				if out.err != nil {
					mc.code = "client_gone"
					return
				}
			}
			continue
		case rd = <-events:
		}
		if rd.err != nil {
			if errors.Is(rd.err, io.EOF) && ctx.Err() == nil {
				if err := st.end(out); err != nil {
					fail(err)
				}
				out.flush()
				return
			}
			fail(rd.err)
			return
		}
		idle.Reset(g.cfg.StreamIdleTimeout)
		done, err := st.event(rd.ev, out)
		if err != nil {
			fail(err)
			return
		}
		out.flush()
		if out.err != nil {
			mc.code = "client_gone"
			return
		}
		if done {
			return
		}
	}
}
