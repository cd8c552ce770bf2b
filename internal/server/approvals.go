package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
)

// ApprovalQueue is what the approvals API needs of the approval engine (approval.Engine).
type ApprovalQueue interface {
	List(ctx context.Context, f approval.Filter) ([]approval.Request, error)
	Get(ctx context.Context, id string) (approval.Request, error)
	Approve(ctx context.Context, id string, a approval.Approver, comment string) (approval.Request, error)
	Deny(ctx context.Context, id string, a approval.Approver, comment string) (approval.Request, error)
	Wait(ctx context.Context, id string) (approval.Request, error)
}

// ApproverAuth authenticates the human behind an approvals request. It must never accept an
// agent's credential.
type ApproverAuth interface {
	Approver(ctx context.Context, r *http.Request) (approval.Approver, error)
}

// ErrNotApprover is what an ApproverAuth returns for a missing or unknown credential.
var ErrNotApprover = errors.New("not an approver")

// ErrUndeclaredApprover is what an ApproverAuth wraps, with ErrNotApprover, when the credential
// verified — a live approver key, a valid login token — but its owner is not declared under
// approvals.approvers. Only then does the 401 say so: the caller proved they hold the credential,
// so naming the missing declaration tells them nothing they could not know, while an unknown or
// forged credential still learns nothing about which IDs exist.
var ErrUndeclaredApprover = errors.New("not a declared approver")

const maxCommentBytes = 4096

// RegisterApprovals adds the approvals API:
//
//	GET  /v1/approvals?state=pending&agent=…&tool=…&limit=…
//	GET  /v1/approvals/{id}[?wait=SECONDS]
//	POST /v1/approvals/{id}/approve   {"comment": "…"}
//	POST /v1/approvals/{id}/deny      {"comment": "…"}
//
// Every endpoint requires an approver credential; approvers see only what their scopes cover.
func (s *Server) RegisterApprovals(q ApprovalQueue, auth ApproverAuth, maxWait time.Duration) {
	a := &approvalsAPI{s: s, q: q, auth: auth, maxWait: maxWait}
	s.mux.HandleFunc("GET /v1/approvals", a.list)
	s.mux.HandleFunc("GET /v1/approvals/{id}", a.get)
	s.mux.HandleFunc("POST /v1/approvals/{id}/approve", func(w http.ResponseWriter, r *http.Request) { a.resolve(w, r, true) })
	s.mux.HandleFunc("POST /v1/approvals/{id}/deny", func(w http.ResponseWriter, r *http.Request) { a.resolve(w, r, false) })
}

type approvalsAPI struct {
	s       *Server
	q       ApprovalQueue
	auth    ApproverAuth
	maxWait time.Duration
}

func (a *approvalsAPI) approver(w http.ResponseWriter, r *http.Request) (approval.Approver, bool) {
	ap, err := a.auth.Approver(r.Context(), r)
	if err != nil {
		a.s.log.LogAttrs(r.Context(), slog.LevelWarn, "approver authentication failed", slog.Any("error", err))
		msg := "an approver credential is required"
		if errors.Is(err, ErrUndeclaredApprover) {
			msg = "the credential is valid but its owner is not a declared approver (add it under approvals.approvers)"
		}
		a.s.reject(w, http.StatusUnauthorized, "not_an_approver", msg)
		return approval.Approver{}, false
	}
	return ap, true
}

func (a *approvalsAPI) list(w http.ResponseWriter, r *http.Request) {
	ap, ok := a.approver(w, r)
	if !ok {
		return
	}
	// The scope filter is part of the query, applied before the limit: requests the approver may
	// not see must not crowd out, from a page, the ones they may.
	f := approval.Filter{Agent: r.URL.Query().Get("agent"), Tool: r.URL.Query().Get("tool"), Limit: 100, Visible: ap.Covers}
	for _, st := range r.URL.Query()["state"] {
		f.States = append(f.States, approval.State(st))
	}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 || n > 1000 {
			a.s.reject(w, http.StatusBadRequest, "bad_request", "limit must be 1..1000")
			return
		}
		f.Limit = n
	}
	reqs, err := a.q.List(r.Context(), f)
	if err != nil {
		a.s.reject(w, http.StatusServiceUnavailable, "approvals_unavailable", "the approval queue cannot be read")
		return
	}
	visible := make([]approval.Request, 0, len(reqs))
	for _, q := range reqs {
		if ap.Covers(q.Agent, q.Tool) { // defence in depth: a store that ignored Visible
			visible = append(visible, q)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"approvals": visible})
}

func (a *approvalsAPI) get(w http.ResponseWriter, r *http.Request) {
	ap, ok := a.approver(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	req, err := a.q.Get(r.Context(), id)
	if err == nil && req.State == approval.Pending && r.URL.Query().Get("wait") != "" {
		secs, perr := strconv.Atoi(r.URL.Query().Get("wait"))
		if perr != nil || secs < 0 {
			a.s.reject(w, http.StatusBadRequest, "bad_request", "wait must be a number of seconds")
			return
		}
		wait := min(time.Duration(secs)*time.Second, a.maxWait)
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		req, err = a.q.Wait(ctx, id)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			req, err = a.q.Get(r.Context(), id)
		}
	}
	if errors.Is(err, approval.ErrNotFound) || (err == nil && !ap.Covers(req.Agent, req.Tool)) {
		// Out of scope looks like absent: an approver learns nothing of requests they may not see.
		a.s.reject(w, http.StatusNotFound, "not_found", "no such approval request")
		return
	}
	if err != nil {
		a.s.reject(w, http.StatusServiceUnavailable, "approvals_unavailable", "the approval queue cannot be read")
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (a *approvalsAPI) resolve(w http.ResponseWriter, r *http.Request, approve bool) {
	ap, ok := a.approver(w, r)
	if !ok {
		return
	}
	body, ok := a.s.readBody(w, r)
	if !ok {
		return
	}
	var in struct {
		Comment string `json:"comment"`
	}
	if len(body) > 0 {
		if err := strictDecode(body, &in); err != nil {
			a.s.rejectBody(w, err)
			return
		}
	}
	if len(in.Comment) > maxCommentBytes {
		a.s.reject(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("comment longer than %d bytes", maxCommentBytes))
		return
	}
	id := r.PathValue("id")
	var (
		req approval.Request
		err error
	)
	if approve {
		req, err = a.q.Approve(r.Context(), id, ap, in.Comment)
	} else {
		req, err = a.q.Deny(r.Context(), id, ap, in.Comment)
	}
	if err != nil {
		if errors.Is(err, approval.ErrOutOfScope) && a.definitionOutOfScope(r, ap, id) {
			a.s.reject(w, http.StatusForbidden, "out_of_scope", "an approved tool definition is admitted for every agent: only an approver whose scope covers every agent (agents: [\".*\"]) for the tool may decide it")
			return
		}
		status, code := approvalStatus(err)
		a.s.reject(w, status, code, approvalMessage(code))
		return
	}
	a.s.log.LogAttrs(r.Context(), slog.LevelInfo, "approval resolved", slog.String("approval_id", id),
		slog.String("approver", ap.ID), slog.Bool("approve", approve), slog.String("state", string(req.State)))
	writeJSON(w, http.StatusOK, req)
}

// definitionOutOfScope reports whether request id is a tool definition's that ap may see (and so
// learns nothing from being told why) but not decide, since its approval would cover every agent.
func (a *approvalsAPI) definitionOutOfScope(r *http.Request, ap approval.Approver, id string) bool {
	req, err := a.q.Get(r.Context(), id)
	return err == nil && req.Rule == approval.DefinitionRule && ap.Covers(req.Agent, req.Tool)
}

// approvalStatus maps the engine's errors to HTTP.
func approvalStatus(err error) (int, string) {
	code := approval.Code(err)
	switch {
	case errors.Is(err, approval.ErrNotFound), errors.Is(err, approval.ErrOutOfScope):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, approval.ErrSelfApproval), errors.Is(err, approval.ErrAgentApprover):
		return http.StatusForbidden, code
	case errors.Is(err, approval.ErrFinal), errors.Is(err, approval.ErrDuplicateVote), errors.Is(err, approval.ErrConflict),
		errors.Is(err, approval.ErrExpired):
		return http.StatusConflict, code
	default:
		return http.StatusServiceUnavailable, "approvals_unavailable"
	}
}

func approvalMessage(code string) string {
	switch code {
	case "not_found":
		return "no such approval request"
	case "approvals_unavailable":
		return "the approval queue cannot be changed right now; nothing was approved"
	default:
		return code
	}
}
