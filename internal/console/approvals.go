package console

import (
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/inspect"
)

// queueLimit bounds the requests one queue page lists.
const queueLimit = 500

// queueFilter is the queue's filter, read from the query string.
type queueFilter struct {
	Agent, Tool, User, Finding string
	Oldest                     bool
	Query                      string // the filter as a query string, for the live refresh
}

func readQueueFilter(r *http.Request) queueFilter {
	q := r.URL.Query()
	f := queueFilter{Agent: bounded(q.Get("agent")), Tool: bounded(q.Get("tool")), User: bounded(q.Get("user")),
		Finding: bounded(q.Get("finding")), Oldest: q.Get("order") == "oldest"}
	v := make(map[string][]string)
	for k, s := range map[string]string{"agent": f.Agent, "tool": f.Tool, "user": f.User, "finding": f.Finding} {
		if s != "" {
			v[k] = []string{s}
		}
	}
	if f.Oldest {
		v["order"] = []string{"oldest"}
	}
	f.Query = encodeQuery(v)
	return f
}

// bounded cuts a filter value to a sane length.
func bounded(s string) string {
	if len(s) > 256 {
		return s[:256]
	}
	return s
}

// pending lists the pending requests p may see that pass f, newest first unless f says oldest.
func (c *Console) pending(r *http.Request, p Principal, f queueFilter) ([]approval.Request, error) {
	reqs, err := c.o.Queue.List(r.Context(), approval.Filter{States: []approval.State{approval.Pending},
		Agent: f.Agent, Tool: f.Tool, Limit: queueLimit, Visible: p.sees})
	if err != nil {
		return nil, err
	}
	out := reqs[:0]
	for _, q := range reqs {
		switch {
		case !p.sees(q.Agent, q.Tool), // defence in depth: a store that ignored Visible
			f.User != "" && q.User != f.User,
			f.Finding != "" && !slices.ContainsFunc(q.Findings, func(x inspect.Finding) bool { return x.Kind == f.Finding }):
			continue
		}
		out = append(out, q)
	}
	slices.SortStableFunc(out, func(a, b approval.Request) int {
		if f.Oldest {
			return a.CreatedAt.Compare(b.CreatedAt)
		}
		return b.CreatedAt.Compare(a.CreatedAt)
	})
	return out, nil
}

type queueData struct {
	F        queueFilter
	Requests []approval.Request
	Now      time.Time
}

func (c *Console) queuePage(w http.ResponseWriter, r *http.Request, s *session, p Principal) {
	f := readQueueFilter(r)
	reqs, err := c.pending(r, p, f)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, "The approval queue cannot be read right now.")
		return
	}
	c.render(w, r, http.StatusOK, "queue", view{Title: "Approvals", Nav: "approvals", P: &p, CSRF: s.csrf,
		Data: queueData{F: f, Requests: reqs, Now: c.o.Now()}})
}

// queueRows is the queue table's body alone: what the live page fetches when the queue changes.
func (c *Console) queueRows(w http.ResponseWriter, r *http.Request, s *session, p Principal) {
	f := readQueueFilter(r)
	reqs, err := c.pending(r, p, f)
	if err != nil {
		http.Error(w, "the approval queue cannot be read", http.StatusServiceUnavailable)
		return
	}
	t := c.pages["queue"]
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := t.ExecuteTemplate(w, "rows", queueData{F: f, Requests: reqs, Now: c.o.Now()}); err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelError, "console: render rows", slog.Any("error", err))
	}
}

// maxStreamLife bounds one live-queue stream; the browser reconnects on its own.
const maxStreamLife = 10 * time.Minute

// queueEvents streams "queue" events (server-sent events) whenever the set of pending requests
// the person may see changes, so that the queue page refreshes without reloading.
func (c *Console) queueEvents(w http.ResponseWriter, r *http.Request, s *session, p Principal) {
	select {
	case c.streams <- struct{}{}:
		defer func() { <-c.streams }()
	default:
		http.Error(w, "too many live views are open", http.StatusServiceUnavailable)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	f := readQueueFilter(r)
	last := "-" // no signature: the first look always sends the count
	ticker := time.NewTicker(c.o.Poll)
	defer ticker.Stop()
	end := time.NewTimer(maxStreamLife)
	defer end.Stop()
	beat := 0
	for {
		reqs, err := c.pending(r, p, f)
		if err == nil {
			ids := make([]string, 0, len(reqs))
			for _, q := range reqs {
				ids = append(ids, q.ID+"/"+fmt.Sprint(q.Revision))
			}
			sig := strings.Join(ids, ",")
			if sig != last {
				last = sig
				if _, err := fmt.Fprintf(w, "event: queue\ndata: %d\n\n", len(reqs)); err != nil {
					return
				}
				if rc.Flush() != nil {
					return
				}
			}
		}
		if beat++; beat%15 == 0 {
			// The person behind the stream may have been signed out, or their key revoked.
			if live, err := c.sessions.alive(r.Context(), s); err != nil || !live {
				return // signed out, expired, or the store cannot say: the stream ends
			}
			np, err := c.principal(r.Context(), s)
			if err != nil {
				if errors.Is(err, ErrNotHere) {
					// Not this replica's to end, but refused here: counted as a page would count it.
					c.refuse(r.Context(), err.Error())
				} else {
					c.endSession(r.Context(), s, err)
				}
				return
			}
			p = np
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-end.C:
			return
		case <-ticker.C:
		}
	}
}

type historyData struct {
	Requests []approval.Request
}

// historyLimit bounds the resolved requests the history lists.
const historyLimit = 200

func (c *Console) historyPage(w http.ResponseWriter, r *http.Request, s *session, p Principal) {
	reqs, err := c.o.Queue.List(r.Context(), approval.Filter{
		States: []approval.State{approval.Approved, approval.Denied, approval.Expired, approval.Consumed},
		Agent:  bounded(r.URL.Query().Get("agent")), Tool: bounded(r.URL.Query().Get("tool")), Limit: historyLimit, Visible: p.sees})
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, "The approval history cannot be read right now.")
		return
	}
	out := reqs[:0]
	for _, q := range reqs {
		if p.sees(q.Agent, q.Tool) {
			out = append(out, q)
		}
	}
	slices.SortStableFunc(out, func(a, b approval.Request) int { return b.ResolvedAt.Compare(a.ResolvedAt) })
	c.render(w, r, http.StatusOK, "history", view{Title: "Approval history", Nav: "history", P: &p, CSRF: s.csrf, Data: historyData{Requests: out}})
}

type requestData struct {
	R          approval.Request
	CanVote    bool
	Voted      bool
	GrantUntil time.Time
	Approvals  int
	Now        time.Time
	// SessionURL opens the flow of the call's session, for the roles that open that page.
	SessionURL string
}

// lookup returns the request id if p may see it; out of scope reads as absent.
func (c *Console) lookup(w http.ResponseWriter, r *http.Request, p Principal) (approval.Request, bool) {
	id := r.PathValue("id")
	if len(id) > 128 {
		c.fail(w, r, http.StatusNotFound, "No such approval request.")
		return approval.Request{}, false
	}
	req, err := c.o.Queue.Get(r.Context(), id)
	if errors.Is(err, approval.ErrNotFound) || (err == nil && !p.sees(req.Agent, req.Tool)) {
		c.fail(w, r, http.StatusNotFound, "No such approval request.")
		return approval.Request{}, false
	}
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, "The approval queue cannot be read right now.")
		return approval.Request{}, false
	}
	return req, true
}

func (c *Console) requestPage(w http.ResponseWriter, r *http.Request, s *session, p Principal) {
	req, ok := c.lookup(w, r, p)
	if !ok {
		return
	}
	now := c.o.Now()
	d := requestData{R: req, Approvals: req.Approvals(), Now: now, GrantUntil: now.Add(req.GrantTTL)}
	if sid := req.Labels["session"]; sid != "" && p.readsAll() {
		d.SessionURL = "/sessions/" + url.PathEscape(sid)
	}
	for _, v := range req.Votes {
		if v.Approver == p.Approver.ID {
			d.Voted = true
		}
	}
	d.CanVote = req.State == approval.Pending && p.mayApprove() && p.Approver.MayDecide(req) && !d.Voted
	flash := ""
	if m := r.URL.Query().Get("result"); m != "" {
		flash = resultMessage(m)
	}
	c.render(w, r, http.StatusOK, "request", view{Title: "Request " + req.ID, Nav: "approvals", P: &p, CSRF: s.csrf, Flash: flash, Data: d})
}

// resolve approves or denies. The approval engine decides whether this person may (scope,
// self-approval, agents, N-of-M); the console only refuses roles that never vote.
func (c *Console) resolve(w http.ResponseWriter, r *http.Request, _ *session, p Principal, approve bool) {
	if !p.mayApprove() {
		c.log.LogAttrs(r.Context(), slog.LevelWarn, "console: vote refused to a read-only role", slog.String("principal", p.Approver.ID), slog.String("role", string(p.Role)))
		c.fail(w, r, http.StatusForbidden, "Your role reads the console; it does not approve or deny.")
		return
	}
	req, ok := c.lookup(w, r, p)
	if !ok {
		return
	}
	comment := r.PostForm.Get("comment")
	if len(comment) > approval.MaxComment {
		c.fail(w, r, http.StatusBadRequest, fmt.Sprintf("A comment is at most %d bytes.", approval.MaxComment))
		return
	}
	var err error
	if approve {
		_, err = c.o.Queue.Approve(r.Context(), req.ID, p.Approver, comment)
	} else {
		_, err = c.o.Queue.Deny(r.Context(), req.ID, p.Approver, comment)
	}
	result := "approved"
	if !approve {
		result = "denied"
	}
	if err != nil {
		result = approval.Code(err)
		if errors.Is(err, approval.ErrOutOfScope) || errors.Is(err, approval.ErrNotFound) {
			c.fail(w, r, http.StatusNotFound, "No such approval request.")
			return
		}
	}
	c.log.LogAttrs(r.Context(), slog.LevelInfo, "console: approval vote", slog.String("approval_id", req.ID),
		slog.String("approver", p.Approver.ID), slog.Bool("approve", approve), slog.String("result", result))
	http.Redirect(w, r, c.o.Path+"/approvals/"+req.ID+"?result="+result, http.StatusSeeOther)
}

func resultMessage(code string) string {
	switch code {
	case "approved":
		return "Your approval is recorded."
	case "denied":
		return "Your denial is recorded."
	case "self_approval":
		return "You invoked this call, so you cannot approve it."
	case "agent_approver":
		return "An agent's identity cannot approve."
	case "duplicate_vote":
		return "You have already voted on this request."
	case "already_resolved", "conflict":
		return "This request was resolved meanwhile; nothing was changed."
	case "expired":
		return "This request expired; nothing was approved."
	case "approvals_unavailable", "record_failed", "internal":
		return "The vote could not be recorded; nothing was approved. Try again."
	}
	// A link can carry any text: only the codes above are shown as they are.
	return "The vote was not recorded."
}

// redactedSpan matches the ledger's placeholders: [REDACTED], [REDACTED:label], and the keyed
// hash that replaces a whole value when a hash key is set.
var redactedSpan = regexp.MustCompile(`\[REDACTED(?::[a-z0-9_.-]{0,64})?\]|hmac-sha256:[0-9a-f]{16,64}`)

// markRedacted renders canonical argument bytes with every redacted span marked, never hidden.
func markRedacted(b []byte) template.HTML {
	s := string(b)
	var out strings.Builder
	last := 0
	for _, m := range redactedSpan.FindAllStringIndex(s, -1) {
		out.WriteString(template.HTMLEscapeString(s[last:m[0]]))
		out.WriteString(`<mark class="redacted" title="redacted by the gateway">`)
		out.WriteString(template.HTMLEscapeString(s[m[0]:m[1]]))
		out.WriteString(`</mark>`)
		last = m[1]
	}
	out.WriteString(template.HTMLEscapeString(s[last:]))
	return template.HTML(out.String()) // every byte from the request went through HTMLEscapeString
}

func findingKinds(fs []inspect.Finding) string {
	kinds := make([]string, 0, len(fs))
	for _, f := range fs {
		if !slices.Contains(kinds, f.Kind) {
			kinds = append(kinds, f.Kind)
		}
	}
	return strings.Join(kinds, ", ")
}

func ago(now, t time.Time) string { return duration(now.Sub(t)) }

func duration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Minute).String()
	}
}

func stamp(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
