package console

import (
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// flowMax bounds the records a session's page shows: its newest ones, read within scanBudget.
// maxSessionID is the longest session ID the gateway accepts (behavior.MaxSessionIDBytes, which
// the console does not import: that package reaches Redis).
const (
	flowMax      = 500
	maxSessionID = 256
)

// flowStep is one record of a session's flow: a decision with the labels it was decided under,
// or a tool result with the labels it brought.
type flowStep struct {
	Row    row
	Result bool // a tool result: Labels are what it brought
	Labels []flowLabel
}

// flowLabel is a label and the result that brought it to the session: its record when it is
// among the records read (Known), else the tool and decision ID the decision's explanation names
// (a session condition's reason says which results brought which labels), if any.
type flowLabel struct {
	Name       string
	Known      bool
	Source     uint64 // the seq of the result that brought it
	Tool       string // that result's tool
	DecisionID string // the result's decision, from the reason, when its record was not read
	New        bool   // on a result: the session gained the label here
}

type flowData struct {
	ID        string
	Steps     []flowStep
	Next      uint64 // records before this seq were not read (0: the flow is whole)
	AuditURL  string
	OlderURL  string
	Principal int // distinct agent and user pairs: the same ID names a session per pair
}

// flowKey is whose session a record is: sessions are per agent and invoking user.
type flowKey struct{ agent, user string }

// sessionPage shows a session's flow, oldest first: each decision with the labels the session
// had when it was decided, and each tool result with the labels it brought, every label linked to
// the result that brought it — why a call to a sink was held.
func (c *Console) sessionPage(w http.ResponseWriter, r *http.Request, s *session, p Principal) {
	if !c.allowRole(w, r, p.readsAll()) {
		return
	}
	id := r.PathValue("id")
	if id == "" || len(id) > maxSessionID {
		c.fail(w, r, http.StatusNotFound, "No such session.")
		return
	}
	rows, next, err := c.search(r.Context(), p, auditFilter{Session: id}, flowMax, scanBudget)
	if err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelError, "console: session", slog.Any("error", err))
		c.fail(w, r, http.StatusServiceUnavailable, "The ledger cannot be read right now.")
		return
	}
	if len(rows) == 0 {
		c.fail(w, r, http.StatusNotFound, "No record names this session in the part of the ledger read.")
		return
	}
	q := url.Values{"session": {id}}
	d := flowData{ID: id, Next: next, AuditURL: "?" + q.Encode()}
	if next != 0 {
		q.Set("before", strconv.FormatUint(next, 10))
		d.OlderURL = "?" + q.Encode()
	}
	slices.Reverse(rows)
	d.Steps, d.Principal = flow(rows)
	c.render(w, r, http.StatusOK, "flow", view{Title: "Session " + clip(id, 64), Nav: "audit", P: &p, CSRF: s.csrf, Data: d})
}

// flow pairs each label of rows (oldest first) with the first result of the same agent and user
// that brought it, as the session store keeps a label's first source.
func flow(rows []row) ([]flowStep, int) {
	sources := map[flowKey]map[string]row{}
	var out []flowStep
	for _, x := range rows {
		if x.R.Session == nil || (x.Kind != ledger.KindDecision && x.Kind != ledger.KindToolResult) {
			continue
		}
		k := flowKey{x.Agent, x.User}
		src := sources[k]
		if src == nil {
			src = map[string]row{}
			sources[k] = src
		}
		st := flowStep{Row: x, Result: x.Kind == ledger.KindToolResult}
		for _, name := range x.R.Session.Labels {
			l := flowLabel{Name: name}
			from, ok := src[name]
			if !ok && st.Result {
				from, ok, l.New = x, true, true
				src[name] = x
			}
			if ok {
				l.Known, l.Source, l.Tool = true, from.Seq, from.R.Tool
			} else {
				l.Tool, l.DecisionID = sourceExplained(x.R, name)
			}
			st.Labels = append(st.Labels, l)
		}
		out = append(out, st)
	}
	return out, len(sources)
}

// sourceExplained is the result that brought label as r's explanation names it: its reason or
// the detail of a policy condition (a session condition's).
func sourceExplained(r *ledger.Record, label string) (tool, decisionID string) {
	if tool, id := sourceInReason(r.Reason, label); id != "" {
		return tool, id
	}
	if r.Policy != nil {
		for _, c := range r.Policy.Conditions {
			if tool, id := sourceInReason(c.Detail, label); id != "" {
				return tool, id
			}
		}
	}
	return "", ""
}

// sourceInReason reads "label (from tool dec_…)" in a session condition's explanation: the tool
// and decision ID of the result that brought label ("" when the reason names none). A misread
// only yields a search for a decision ID that finds nothing.
func sourceInReason(reason, label string) (tool, decisionID string) {
	needle := label + " (from "
	for i := 0; ; {
		j := strings.Index(reason[i:], needle)
		if j < 0 {
			return "", ""
		}
		at := i + j
		i = at + len(needle)
		if at > 0 && reason[at-1] != ' ' {
			continue // the end of a longer label
		}
		rest := reason[i:]
		end := strings.IndexByte(rest, ')')
		if end < 0 {
			return "", ""
		}
		tool, id, ok := strings.Cut(rest[:end], " ")
		if !ok || !strings.HasPrefix(id, "dec_") || strings.Contains(id, " ") {
			return "", ""
		}
		return tool, id
	}
}

// clip bounds s to n bytes for a title.
func clip(s string, n int) string {
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}
