package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/jsonx"
)

// decodeCall reads a decide body, or one call of a batch (batch: the members a batch call may
// hold), in one strict pass (jsonx.DecodeFields): what strictDecode would refuse is refused — a
// repeated key at any depth, exactly or up to case, invalid UTF-8, a member the body may not
// hold or one whose name differs only by case from a member it may hold, a value of the wrong
// type, trailing data — and the parameters come back both as received (req.Params, a slice of
// raw) and decoded (params, what the guard decides on), so that nothing parses them again. params
// is nil when the parameters are absent or not an object: the guard then reads req.Params itself
// (absent: {}; not an object: a recorded malformed_params denial, as before).
func decodeCall(raw []byte, batch bool) (req decideRequest, params map[string]any, err error) {
	return decodeCallDepth(raw, batch, jsonx.MaxNesting)
}

// decodeCallDepth is decodeCall refusing nesting deeper than maxDepth in the same pass.
func decodeCallDepth(raw []byte, batch bool, maxDepth int) (req decideRequest, params map[string]any, err error) {
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		// Not an object: the strict decoder says why (null sets nothing, and the request's own
		// checks refuse it), with the code it gives.
		return req, nil, strictDecode(raw, &req)
	}
	fields, err := jsonx.DecodeFieldsDepth(raw, maxDepth)
	if err != nil {
		return req, nil, fmt.Errorf("invalid JSON body: %w", err)
	}
	for _, f := range fields {
		var dst any // a member decoded from its text by the strict decoder (rare members)
		switch f.Key {
		case "tool":
			err = stringField(f, &req.Tool)
		case "params":
			req.Params = json.RawMessage(f.Raw)
			params, _ = f.Value.(map[string]any)
		case "user_token":
			err = stringField(f, &req.UserToken)
		case "approval_id":
			err = stringField(f, &req.ApprovalID)
		case "request_id":
			err = stringField(f, &req.RequestID)
		case "user":
			dst = &req.User
		case "context":
			dst = &req.Context
		case "agent_id", "wait_seconds", "session_id":
			if batch {
				// A batch names its agent once, and does not long-poll or name sessions per call.
				err = unknownField(f.Key)
				break
			}
			switch f.Key {
			case "agent_id":
				err = stringField(f, &req.AgentID)
			case "wait_seconds":
				dst = &req.WaitSeconds
			default:
				err = stringField(f, &req.SessionID)
			}
		default:
			err = unknownField(f.Key)
		}
		if err == nil && dst != nil {
			err = jsonx.DecodeStrict(f.Raw, dst)
		}
		if err != nil {
			return decideRequest{}, nil, fmt.Errorf("invalid JSON body: %w", err)
		}
	}
	return req, params, nil
}

// stringField sets *dst to a string member's value; null leaves it empty, as a decoder does. The
// value is copied: the decoder's strings are slices of one copy of the whole body, and these
// names outlive the request (the policy's name cache, behaviour windows, sessions, approvals) —
// a slice would keep a body of up to the size limit alive for as long as its name is remembered.
func stringField(f jsonx.Field, dst *string) error {
	switch v := f.Value.(type) {
	case string:
		*dst = strings.Clone(v)
	case nil:
	default:
		return fmt.Errorf("json: %q must be a string", f.Key)
	}
	return nil
}

// unknownField is the decoder's refusal of a member the body may not hold.
func unknownField(key string) error { return fmt.Errorf("json: unknown field %q", key) }
