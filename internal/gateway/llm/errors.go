package llm

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Stable error codes the gateway puts in the provider's error body ("code" for OpenAI
// formats; prefixed to the message for Anthropic, whose errors carry no code).
const (
	codeAuth             = "gateway_unauthenticated"
	codeAmbiguous        = "credential_ambiguous"
	codeInvalidRequest   = "invalid_request"
	codeNotFound         = "not_found"
	codeTooLarge         = "request_too_large"
	codeContentBlocked   = "content_blocked"
	codeContentUnknown   = "content_unsupported"
	codeToolUnavailable  = "tool_unavailable"
	codeCheckerFailed    = "policy_check_failed"
	codeUpstreamTimeout  = "upstream_timeout"
	codeUpstreamFailed   = "upstream_unavailable"
	codeUpstreamMalform  = "upstream_malformed"
	codeUpstreamAuth     = "upstream_credential_rejected"
	codeUpstreamRedirect = "upstream_redirect"
	codeStreamIncomplete = "upstream_stream_incomplete"
	// codeSession: the session store could not read or record the conversation's session.
	codeSession = "session_unavailable"
)

// writeError answers status with a body in the provider's error format, so the agent's SDK
// raises its ordinary API error carrying the message.
//
// The SDKs retry 408, 409, 429 and 5xx on their own unless told not to: an error the gateway made
// that the same request would meet again (a refused key, a redirect, a malformed upstream answer,
// a refusal) says x-should-retry: false, so one bad request is not sent three times. Only the
// transient ones (upstream unreachable or slow, the policy or session store unavailable) leave it
// to the SDK.
func writeError(w http.ResponseWriter, f Format, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Portcullis-Error", code)
	switch code {
	case codeUpstreamTimeout, codeUpstreamFailed, codeCheckerFailed, codeSession:
		w.Header().Del("X-Should-Retry")
	default:
		w.Header().Set("X-Should-Retry", "false")
	}
	w.WriteHeader(status)
	_, _ = w.Write(errorBody(f, status, code, msg))
}

// errorBody is the provider-format JSON error body.
func errorBody(f Format, status int, code, msg string) []byte {
	if f == Messages {
		return mustMarshal(map[string]any{
			"type":  "error",
			"error": map[string]any{"type": anthropicErrorType(status), "message": "portcullis: " + code + ": " + msg},
		})
	}
	return mustMarshal(map[string]any{
		"error": map[string]any{"message": "portcullis: " + msg, "type": openAIErrorType(status), "param": nil, "code": code},
	})
}

// streamErrorEvent is the provider-format error event ending a stream that already began.
func streamErrorEvent(f Format, status int, code, msg string, seq int) sseEvent {
	switch f {
	case Messages:
		return sseEvent{name: "error", data: errorBody(f, status, code, msg)}
	case Responses:
		// The Responses "error" event carries code/message at top level; the nested "error"
		// object makes the OpenAI SDK's stream reader surface it as an error too.
		return sseEvent{name: "error", data: mustMarshal(map[string]any{
			"type": "error", "code": code, "message": "portcullis: " + msg, "param": nil, "sequence_number": seq,
			"error": map[string]any{"type": openAIErrorType(status), "code": code, "message": "portcullis: " + msg},
		})}
	default:
		return sseEvent{data: errorBody(f, status, code, msg)}
	}
}

func openAIErrorType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status < 500:
		return "invalid_request_error"
	default:
		return "server_error"
	}
}

func anthropicErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	}
	if status < 500 {
		return "invalid_request_error"
	}
	return "api_error"
}

// mustMarshal marshals values built by this package (maps of strings, numbers and raw JSON
// that was already validated); a failure is a programming error.
func mustMarshal(v any) []byte {
	b, err := marshal(v)
	if err != nil {
		panic("llm: marshal: " + err.Error())
	}
	return b
}

// marshal is json.Marshal without HTML escaping, so text reaches the agent byte for byte.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// quote shows a name the model chose in a notice: escaped, and cut at maxQuoted bytes, so a model
// (or whoever steers it) cannot make the gateway echo a huge name back.
func quote(s string) string {
	if len(s) > maxQuoted {
		return strconv.Quote(strings.ToValidUTF8(s[:maxQuoted], "")) + "…"
	}
	return strconv.Quote(s)
}

const maxQuoted = 256
