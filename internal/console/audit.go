package console

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-ai/portcullis/internal/auditindex"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// Search bounds. A page reads back from its cursor in chunks until it has a page of matches or
// has read scanBudget records; then it offers the next page from where it stopped. A search that
// matches rarely over a long ledger so answers in bounded time, page by page, never all at once.
const (
	pageSize     = 50
	scanChunk    = 4096
	scanBudget   = 200_000
	exportMax    = 100_000
	exportBudget = 2_000_000
)

// auditFilter is a search of the ledger, read from the query string.
type auditFilter struct {
	Agent, User, Tool, Decision, Kind, Rule, DecisionID, Text string
	Session                                                   string // the session ID records were decided in (or, on a result, brought labels to)
	Since, Until                                              string // as typed: RFC 3339 or a duration ago
	since, until                                              time.Time
	Before                                                    uint64 // the page ends before this seq (0: at the end)
	Query                                                     string // the filter (without the cursor) as a query string
}

func readAuditFilter(r *http.Request, now time.Time) (auditFilter, error) {
	q := r.URL.Query()
	f := auditFilter{Agent: bounded(q.Get("agent")), User: bounded(q.Get("user")), Tool: bounded(q.Get("tool")),
		Decision: bounded(q.Get("decision")), Kind: bounded(q.Get("kind")), Rule: bounded(q.Get("rule")),
		DecisionID: bounded(q.Get("decision_id")), Session: bounded(q.Get("session")), Text: bounded(q.Get("q")), Since: bounded(q.Get("since")), Until: bounded(q.Get("until"))}
	var err error
	if f.since, err = parseWhen(f.Since, now); err != nil {
		return f, fmt.Errorf("since: %w", err)
	}
	if f.until, err = parseWhen(f.Until, now); err != nil {
		return f, fmt.Errorf("until: %w", err)
	}
	if b := q.Get("before"); b != "" {
		if f.Before, err = strconv.ParseUint(b, 10, 64); err != nil {
			return f, errors.New("before: want a record number")
		}
	}
	v := url.Values{}
	for k, s := range map[string]string{"agent": f.Agent, "user": f.User, "tool": f.Tool, "decision": f.Decision, "kind": f.Kind,
		"rule": f.Rule, "decision_id": f.DecisionID, "session": f.Session, "q": f.Text, "since": f.Since, "until": f.Until} {
		if s != "" {
			v.Set(k, s)
		}
	}
	f.Query = v.Encode()
	return f, nil
}

func encodeQuery(v url.Values) string { return v.Encode() }

// parseWhen reads RFC 3339 or a duration ago ("1h"); "" is no bound.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02T15:04", s); err == nil { // a datetime-local input
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor a duration such as 1h", s)
}

// row is one record as a search lists it.
type row struct {
	Seq    uint64
	R      *ledger.Record
	Kind   ledger.Kind
	Agent  string
	User   string
	Rule   string
	Bytes  []byte
	Digest string
}

// needles are byte strings every matching record's stored form contains: a record is parsed only
// when it holds them all. Only values whose JSON form is unambiguous (plain ASCII) become needles;
// the full match below decides.
func (f *auditFilter) needles() [][]byte {
	var out [][]byte
	add := func(prefix, v string) {
		if v == "" || !plain(v) {
			return
		}
		out = append(out, []byte(prefix+v+`"`))
	}
	add(`"agent":{"id":"`, f.Agent)
	add(`"user":{"id":"`, f.User)
	add(`"tool":"`, f.Tool)
	add(`"decision_id":"`, f.DecisionID)
	add(`"rule":"`, f.Rule)
	add(`"session":{"id":"`, f.Session)
	return out
}

// plain: letters, digits and punctuation no JSON encoder escapes.
func plain(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.:@/-+ ", r)) {
			return false
		}
	}
	return true
}

func (f *auditFilter) match(p Principal, data []byte, r *ledger.Record) bool {
	agent, user, rule, session := "", "", "", ""
	if r.Session != nil {
		session = r.Session.ID
	}
	if r.Agent != nil {
		agent = r.Agent.ID
	}
	if r.User != nil {
		user = r.User.ID
	}
	if r.Policy != nil {
		rule = r.Policy.Rule
	}
	switch {
	case !p.sees(agent, r.Tool),
		f.Agent != "" && agent != f.Agent,
		f.User != "" && user != f.User,
		f.Tool != "" && r.Tool != f.Tool,
		f.Decision != "" && !strings.EqualFold(r.Decision, f.Decision),
		f.Kind != "" && string(r.Event()) != f.Kind,
		f.Rule != "" && rule != f.Rule,
		f.DecisionID != "" && r.DecisionID != f.DecisionID,
		f.Session != "" && session != f.Session,
		!f.since.IsZero() && r.Time.Before(f.since),
		!f.until.IsZero() && r.Time.After(f.until):
		return false
	}
	// Text is searched in the stored bytes: redacted values are not there to be found.
	return f.Text == "" || bytes.Contains(bytes.ToLower(data), bytes.ToLower([]byte(f.Text)))
}

// matchEntry reads e if it holds every needle, and returns its row when it matches.
func (f *auditFilter) matchEntry(p Principal, needles [][]byte, e ledger.Entry) (row, bool, error) {
	for _, n := range needles {
		if !bytes.Contains(e.Data, n) {
			return row{}, false, nil
		}
	}
	r, err := ledger.ParseRecord(e.Data)
	if err != nil {
		return row{}, false, fmt.Errorf("record %d: %w", e.Seq, err)
	}
	if !f.match(p, e.Data, r) {
		return row{}, false, nil
	}
	return newRow(e, r), true, nil
}

func newRow(e ledger.Entry, r *ledger.Record) row {
	out := row{Seq: e.Seq, R: r, Kind: r.Event(), Bytes: append([]byte(nil), e.Data...)}
	if r.Agent != nil {
		out.Agent = r.Agent.ID
	}
	if r.User != nil {
		out.User = r.User.ID
	}
	if r.Policy != nil {
		out.Rule = r.Policy.Rule
	}
	return out
}

// errStop ends a scan early.
var errStop = errors.New("stop")

// search returns up to limit matches, newest first, ending before f.Before (or at the end), and
// the cursor of the next page (0: no more). It reads at most budget records. With an index
// (Options.Index) a filter it narrows reads the records the index names below its watermark,
// and scans only the records above it; free text alone, or no filter, is a scan.
func (c *Console) search(ctx context.Context, p Principal, f auditFilter, limit, budget int) ([]row, uint64, error) {
	size, err := c.o.Ledger.Size(ctx)
	if err != nil {
		return nil, 0, err
	}
	hi := size
	if f.Before > 0 && f.Before < size {
		hi = f.Before
	}
	q := f.indexQuery()
	if c.o.Index == nil || !q.Indexed() {
		out, next, _, err := c.scan(ctx, p, f, 0, hi, limit, budget)
		return out, next, err
	}
	st, err := c.o.Index.State(ctx)
	if err != nil {
		// The index is a shortcut: without it the search is the bounded scan.
		return c.scanInstead(ctx, p, f, err, nil, hi, limit, budget)
	}
	wm := min(st.Next, hi)
	out, next, read, err := c.scan(ctx, p, f, wm, hi, limit, budget)
	switch {
	case err != nil || next != 0:
		return out, next, err
	case len(out) == limit:
		// The page filled up right at the watermark: the index's records come next.
		return out, out[len(out)-1].Seq, nil
	}
	res, next, err := c.searchIndex(ctx, p, f, q, wm, out, limit, budget-read)
	if err != nil && ctx.Err() == nil {
		// A row that cannot be read (auditindex.ErrDamaged, until the indexer rebuilds) or an
		// index that stopped answering: the rest of the search, below the watermark, is the
		// bounded scan, with what is left of the budget.
		return c.scanInstead(ctx, p, f, err, out, wm, limit, budget-read)
	}
	return res, next, err
}

// scanInstead is the search's bounded scan of the records below hi when the index cannot be
// read (ixErr), after the rows found above hi.
func (c *Console) scanInstead(ctx context.Context, p Principal, f auditFilter, ixErr error, found []row, hi uint64, limit, budget int) ([]row, uint64, error) {
	c.log.LogAttrs(ctx, slog.LevelWarn, "console: the audit index cannot be read; scanning", slog.Any("error", ixErr))
	more, next, _, err := c.scan(ctx, p, f, 0, hi, limit-len(found), budget)
	return append(found, more...), next, err
}

// recordChunk bounds the records read by one query of the index's candidates.
const recordChunk = 256

// searchIndex appends to out the matches below wm among the index's candidates for q, reading
// at most budget of them.
func (c *Console) searchIndex(ctx context.Context, p Principal, f auditFilter, q auditindex.Query, wm uint64, out []row, limit, budget int) ([]row, uint64, error) {
	needles := f.needles()
	var next uint64
	// Candidates are read a chunk at a time, across blocks: a rare term's few records a block
	// cost one query together.
	var pending []uint64
	stopped := false
	flush := func() (bool, error) {
		for len(pending) > 0 {
			if budget <= 0 {
				next = pending[0] + 1 // the next page starts with the first candidate not read
				return false, nil
			}
			n := min(len(pending), recordChunk, budget)
			chunk := pending[:n]
			pending, budget = pending[n:], budget-n
			err := c.o.Index.Records(ctx, chunk, func(e ledger.Entry) error {
				x, ok, err := f.matchEntry(p, needles, e)
				if ok {
					if out = append(out, x); len(out) == limit {
						return errStop
					}
				}
				return err
			})
			if errors.Is(err, errStop) {
				next = out[len(out)-1].Seq
				return false, nil
			}
			if err != nil {
				return false, err
			}
		}
		return true, nil
	}
	err := auditindex.Candidates(ctx, c.o.Index, q, wm, func(seqs []uint64) (bool, error) {
		pending = append(pending, seqs...)
		if len(pending) < recordChunk {
			return true, nil
		}
		more, err := flush()
		stopped = !more
		return more, err
	})
	if err == nil && !stopped {
		_, err = flush()
	}
	if err != nil {
		return nil, 0, err
	}
	return out, next, nil
}

// indexQuery is what of f the index can narrow: its fields but the decision ID, and its time
// range (free text and the decision ID are matched on the records read). A decision is matched regardless of case; one that is not
// ASCII is left to that match.
func (f *auditFilter) indexQuery() auditindex.Query {
	q := auditindex.Query{Since: f.since, Until: f.until}
	for _, t := range []auditindex.Term{{Field: auditindex.FieldAgent, Value: f.Agent}, {Field: auditindex.FieldUser, Value: f.User},
		{Field: auditindex.FieldTool, Value: f.Tool}, {Field: auditindex.FieldKind, Value: f.Kind}, {Field: auditindex.FieldRule, Value: f.Rule},
		{Field: auditindex.FieldSession, Value: f.Session}} {
		if t.Value != "" {
			t.Value = auditindex.StoredValue(t.Value)
			q.Terms = append(q.Terms, t)
		}
	}
	if f.Decision != "" && ascii(f.Decision) {
		q.Terms = append(q.Terms, auditindex.Term{Field: auditindex.FieldDecision, Value: auditindex.StoredValue(strings.ToLower(f.Decision))})
	}
	return q
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// scan reads back from hi to lo for up to limit matches, newest first, reading at most budget
// records. next is where the next page starts (0: lo was reached); read is how many it read.
func (c *Console) scan(ctx context.Context, p Principal, f auditFilter, lo, hi uint64, limit, budget int) (out []row, next uint64, read int, err error) {
	needles := f.needles()
	for hi > lo && len(out) < limit && read < budget {
		from := lo
		if hi-lo > scanChunk {
			from = hi - scanChunk
		}
		var chunk []row
		err := c.o.Ledger.Scan(ctx, from, func(e ledger.Entry) error {
			if e.Seq >= hi {
				return errStop
			}
			read++
			x, ok, err := f.matchEntry(p, needles, e)
			if ok {
				chunk = append(chunk, x)
			}
			return err
		})
		if err != nil && !errors.Is(err, errStop) {
			return nil, 0, read, err
		}
		slices.Reverse(chunk)
		for i, x := range chunk {
			if len(out) == limit {
				// The next page starts after the last row shown.
				return out, chunk[i-1].Seq, read, nil
			}
			out = append(out, x)
		}
		hi = from
	}
	if hi == lo {
		return out, 0, read, nil
	}
	if len(out) == limit {
		return out, out[len(out)-1].Seq, read, nil
	}
	return out, hi, read, nil
}

// banner is the ledger's state as the explorer shows it.
type banner struct {
	Size       uint64
	Checkpoint uint64
	SignedAt   string
	Verified   bool
	Problem    string
	Origin     string
	RootHash   string
}

func (c *Console) banner(ctx context.Context) banner {
	var b banner
	size, err := c.o.Ledger.Size(ctx)
	if err != nil {
		b.Problem = "the ledger cannot be read"
		return b
	}
	b.Size = size
	cp, ok, err := c.o.Ledger.LatestCheckpoint(ctx)
	switch {
	case err != nil:
		b.Problem = "the latest checkpoint cannot be read"
		return b
	case !ok:
		b.Problem = "no signed checkpoint yet"
		return b
	}
	opened, _, err := ledger.OpenCheckpoint(cp.Note, c.o.Verifiers)
	if err != nil {
		b.Problem = "the latest checkpoint's signature does not verify with the ledger's keys"
		return b
	}
	if opened.Size != cp.Size || opened.Size > size {
		b.Problem = "the latest checkpoint does not match the stored records"
		return b
	}
	b.Verified, b.Checkpoint, b.Origin, b.RootHash = true, opened.Size, opened.Origin, hex.EncodeToString(opened.Hash[:])
	if t, ok, _ := opened.SignedAt(); ok {
		b.SignedAt = t.UTC().Format("2006-01-02 15:04:05Z")
	}
	return b
}

type auditData struct {
	F      auditFilter
	Rows   []row
	Next   uint64
	Banner banner
	Kinds  []ledger.Kind
	Error  string
	// FlowURL opens the flow of the session searched for, for the roles that open that page.
	FlowURL string
	// Scanned: the search reads the ledger back (free text alone, or no filter), a budget a page.
	Scanned bool
	Budget  string // scanBudget as people read it
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, s *session, p Principal) {
	d := auditData{Banner: c.banner(r.Context()), Kinds: ledger.Kinds, Budget: grouped(scanBudget)}
	f, err := readAuditFilter(r, c.o.Now())
	d.F = f
	if f.Session != "" && p.readsAll() {
		d.FlowURL = "/sessions/" + url.PathEscape(f.Session)
	}
	status := http.StatusOK
	d.Scanned = c.o.Index == nil || !f.indexQuery().Indexed()
	if err != nil {
		d.Error, status = err.Error(), http.StatusBadRequest
	} else if d.Rows, d.Next, err = c.search(r.Context(), p, f, pageSize, scanBudget); err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelError, "console: audit search", slog.Any("error", err))
		d.Error, status = "The ledger cannot be searched right now.", http.StatusServiceUnavailable
	}
	c.render(w, r, status, "audit", view{Title: "Audit", Nav: "audit", P: &p, CSRF: s.csrf, Data: d})
}

// record reads the record at seq, if p may see it.
func (c *Console) record(ctx context.Context, p Principal, seq uint64) (row, bool, error) {
	var out row
	found := false
	err := c.o.Ledger.Scan(ctx, seq, func(e ledger.Entry) error {
		if e.Seq != seq {
			return errStop
		}
		r, err := ledger.ParseRecord(e.Data)
		if err != nil {
			return err
		}
		out, found = newRow(e, r), true
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return row{}, false, err
	}
	if !found || !p.sees(out.Agent, out.R.Tool) {
		return row{}, false, nil
	}
	leaf := ledger.LeafHash(out.Bytes)
	out.Digest = hex.EncodeToString(leaf[:])
	return out, true, nil
}

// siblingWindow bounds how far around a record its decision's other records are looked for.
const siblingWindow = 5000

type recordData struct {
	Row      row
	Pretty   string
	Siblings []row
	Banner   banner
	Provable bool
	// SessionURL opens the record's session flow: for the roles that open that page.
	SessionURL string
}

func (c *Console) recordPage(w http.ResponseWriter, r *http.Request, s *session, p Principal) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		c.fail(w, r, http.StatusNotFound, "No such record.")
		return
	}
	x, ok, err := c.record(r.Context(), p, seq)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, "The ledger cannot be read right now.")
		return
	}
	if !ok {
		c.fail(w, r, http.StatusNotFound, "No such record.")
		return
	}
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, x.Bytes, "", "  ")
	d := recordData{Row: x, Pretty: pretty.String(), Banner: c.banner(r.Context())}
	d.Provable = d.Banner.Verified && seq < d.Banner.Checkpoint
	if x.R.Session != nil && x.R.Session.ID != "" && p.readsAll() {
		d.SessionURL = "/sessions/" + url.PathEscape(x.R.Session.ID)
	}
	if x.R.DecisionID != "" {
		f := auditFilter{DecisionID: x.R.DecisionID, Before: seq + siblingWindow}
		sib, _, err := c.search(r.Context(), p, f, 100, 2*siblingWindow)
		if err == nil {
			for _, s := range sib {
				if s.Seq != seq {
					d.Siblings = append(d.Siblings, s)
				}
			}
		}
	}
	c.render(w, r, http.StatusOK, "record", view{Title: fmt.Sprintf("Record %d", seq), Nav: "audit", P: &p, CSRF: s.csrf, Data: d})
}

// recordProof downloads the record's inclusion proof against the latest signed checkpoint, in
// the form `portcullis audit prove` prints.
func (c *Console) recordProof(w http.ResponseWriter, r *http.Request, _ *session, p Principal) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if _, ok, err := c.record(r.Context(), p, seq); err != nil || !ok {
		http.NotFound(w, r)
		return
	}
	cp, ok, err := c.o.Ledger.LatestCheckpoint(r.Context())
	if err != nil || !ok || seq >= cp.Size {
		http.Error(w, "no signed checkpoint covers this record yet; try again in a moment", http.StatusConflict)
		return
	}
	proof, err := ledger.ProveInclusion(r.Context(), c.o.Ledger, seq, cp.Size)
	if err != nil {
		http.Error(w, "the proof cannot be computed right now", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="record-%d-proof.json"`, seq))
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(struct {
		ledger.InclusionProof
		Checkpoint string `json:"checkpoint"`
	}{proof, string(cp.Note)})
}

// auditExport writes the filtered view as JSON lines (each line a record's stored bytes, as
// `portcullis audit export` writes them) or CSV, newest first, at most exportMax records.
func (c *Console) auditExport(w http.ResponseWriter, r *http.Request, _ *session, p Principal) {
	f, err := readAuditFilter(r, c.o.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	format := r.URL.Query().Get("format")
	if format != "jsonl" && format != "csv" {
		http.Error(w, "format: want jsonl or csv", http.StatusBadRequest)
		return
	}
	rows, next, err := c.search(r.Context(), p, f, exportMax, exportBudget)
	if err != nil {
		http.Error(w, "the ledger cannot be searched right now", http.StatusServiceUnavailable)
		return
	}
	if next != 0 {
		// The view was cut: say so, and where to continue, rather than pass a part for the whole.
		w.Header().Set("X-Portcullis-Continue-Before", strconv.FormatUint(next, 10))
	}
	name := "portcullis-audit." + format
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	if format == "jsonl" {
		w.Header().Set("Content-Type", "application/jsonl")
		for _, x := range rows {
			_, _ = w.Write(x.Bytes)
			_, _ = w.Write([]byte{'\n'})
		}
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"seq", "time", "kind", "decision_id", "agent", "user", "tool", "decision", "rule", "threat_level", "reason"})
	for _, x := range rows {
		_ = cw.Write([]string{strconv.FormatUint(x.Seq, 10), x.R.Time.UTC().Format(time.RFC3339Nano), string(x.Kind), cell(x.R.DecisionID),
			cell(x.Agent), cell(x.User), cell(x.R.Tool), cell(x.R.Decision), cell(x.Rule), x.R.ThreatLevel.String(), cell(x.R.Reason)})
	}
	cw.Flush()
}

// cell defuses a CSV cell a spreadsheet would run as a formula: an agent chooses tool names,
// user names and reasons.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
