package guard

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/jsonx"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// decodeParams reads the call's parameters into the policy engine's Go form. Absent parameters
// are an empty object; anything but an object is malformed (tool arguments are named).
func decodeParams(raw json.RawMessage) (map[string]any, error) {
	m, err := jsonx.DecodeObject(raw)
	if err != nil {
		return nil, fmt.Errorf("decode params: %w", err)
	}
	return m, nil
}

// callParams is the one strict parse of a call's parameters (jsonx.DecodeObject: a repeated
// key, exactly or up to case, invalid UTF-8 and nesting beyond its limit refused; numbers as
// written), shared by every step that reads them: inspection walks obj, the policy decides on
// it, the approval digest and the proposal key hash its canonical encoding, and the ledger
// redacts and stores it. No step parses the text again.
type callParams struct {
	raw json.RawMessage
	obj map[string]any
	// canon and digest are computed once, when a step first needs them.
	canon  []byte
	digest string
}

// parse parses raw, the parameters as received, into p.
func (p *callParams) parse(raw json.RawMessage) error {
	obj, err := decodeParams(raw)
	if err != nil {
		return err
	}
	*p = callParams{raw: raw, obj: obj}
	return nil
}

// paramsDigest is approval.Digest of the parameters — the canonical encoding of obj, the same
// bytes Canonicalize yields for raw (approval.CanonicalValue) — computed once per call.
func (p *callParams) paramsDigest() (string, error) {
	if p.digest != "" {
		return p.digest, nil
	}
	if p.canon == nil {
		c, err := approval.CanonicalValue(p.obj, len(p.raw))
		if err != nil {
			return "", fmt.Errorf("digest params: %w", err)
		}
		p.canon = c
	}
	p.digest = approval.DigestCanonical(p.canon)
	return p.digest, nil
}

// takeApprovalArg takes the approval argument out of the parsed parameters: req with the ID,
// and p's text replaced by the canonical encoding of the rest (numbers as written). Parameters
// without it are left exactly as received; the retry that carries it is the one that pays for
// an encoding — one: that encoding is also the approval digest's (p.canon), so the digest the
// grant is matched by hashes it rather than encoding the parameters again.
func takeApprovalArg(req Request, p *callParams) (Request, error) {
	v, ok := p.obj[req.ApprovalArg]
	if !ok {
		return req, nil
	}
	id, ok := v.(string)
	if !ok {
		return req, fmt.Errorf("decode params: %s must be a string", req.ApprovalArg)
	}
	delete(p.obj, req.ApprovalArg)
	// Within the approval digest's limits, its encoding is the text; beyond them (deeper or
	// larger than a grant may bind) the text is encoded within the parse's own, and the digest,
	// if a step asks for it, is refused as it would be without the argument.
	out, err := approval.CanonicalValue(p.obj, len(p.raw))
	if err == nil {
		p.canon = out
	} else if out, err = jsonx.AppendCanonical(make([]byte, 0, len(p.raw)), p.obj, jsonx.MaxNesting); err != nil {
		return req, fmt.Errorf("decode params: re-encode without %s: %w", req.ApprovalArg, err)
	}
	p.raw = out
	req.Params, req.ApprovalID = out, id
	return req, nil
}

func userPrincipal(u *identity.User) *ledger.Principal {
	if u == nil {
		return nil
	}
	p := &ledger.Principal{ID: u.ID, Verified: u.Verified, Method: "token"}
	if u.Asserted {
		p.Method = "asserted"
	}
	return p
}

func policyUser(u *identity.User) *policy.User {
	if u == nil {
		return nil
	}
	return &policy.User{ID: u.ID, Permissions: u.Permissions, Attributes: u.Attributes}
}

func findingKinds(fs []inspect.Finding) []string {
	if len(fs) == 0 {
		return nil
	}
	kinds := make([]string, 0, len(fs))
	for _, f := range fs {
		kinds = append(kinds, f.Kind)
	}
	return kinds
}

func isAnomaly(kind string) bool { return strings.HasPrefix(kind, "anomaly.") }

func ledgerFindings(fs []inspect.Finding) []ledger.Finding {
	if len(fs) == 0 {
		return nil
	}
	out := make([]ledger.Finding, len(fs))
	for i, f := range fs {
		out[i] = ledger.Finding{Kind: f.Kind, Severity: f.Severity, Path: f.Path, Evidence: f.Evidence, Score: f.Score}
	}
	return out
}

// ledgerPolicy turns the verdict into the record's policy section — the deciding rule, or why no
// rule decided, and the conditions the verdict quotes with their results — and, for a CONSTRAIN,
// the deciding rule's conditions for the approver's screen. Details quote parameters only as sh
// shows them (req.Display), and errors are scrubbed of what sh removed.
func ledgerPolicy(version string, v *policy.Verdict, req *policy.Request, sh *shield) (*ledger.Policy, []approval.Condition) {
	p := &ledger.Policy{Version: version, Rule: v.Rule}
	if v.Rule == "" {
		p.NoMatch = v.Reason
	}
	var forApprovers []approval.Condition
	v.Conditions(req, func(c policy.RecordedCondition) {
		detail := c.Detail
		if c.Error != "" {
			detail = strings.TrimSpace(detail + " error: " + c.Error)
		}
		p.Conditions = append(p.Conditions, ledger.Condition{Expr: c.Ref, Result: c.Result, Detail: sh.scrub(detail)})
		if v.Action == policy.Constrain && c.Rule == v.Rule {
			text := c.Kind
			if c.Detail != "" {
				text += ": " + c.Detail
			}
			forApprovers = append(forApprovers, approval.Condition{Text: sh.scrub(text), Result: c.Result})
		}
	})
	return p, forApprovers
}

func approvalDetails(r approval.Request) *ledger.Approval {
	a := &ledger.Approval{ID: r.ID, Result: string(r.State), Approver: r.ResolvedBy, Comment: r.Comment}
	if !r.CreatedAt.IsZero() {
		t := r.CreatedAt
		a.RequestedAt = &t
	}
	if !r.ResolvedAt.IsZero() {
		t := r.ResolvedAt
		a.ResolvedAt = &t
		a.WaitMS = r.ResolvedAt.Sub(r.CreatedAt).Milliseconds()
	}
	return a
}

// isFinal reports a grant that can never run: denied, expired or already used.
func isFinal(err error) bool {
	return errors.Is(err, approval.ErrDenied) || errors.Is(err, approval.ErrExpired) || errors.Is(err, approval.ErrConsumed)
}

func isMismatch(err error) bool { return errors.Is(err, approval.ErrMismatch) }

// Version identifies a compiled policy set by the bytes of its files (policy.Set.Version). It is
// recorded with every decision and approval, so an auditor can tell which policy decided.
func Version(s *policy.Set) string { return s.Version() }
