package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	segjson "github.com/segmentio/encoding/json"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// FormatVersion is the record format version written in every record's "v" field.
//
// Version 2 added "inputs" (what a decision's policy evaluation read) and made official the
// "shadow" field, which some version 1 records carry: a reader that knows only version 1 refuses
// a version 2 record by its version, not by an unknown field. Version 1 records are still read
// and verified (MinFormatVersion); they never carry "inputs".
const FormatVersion = 2

// MinFormatVersion is the oldest record format version still read.
const MinFormatVersion = 1

// Kind says what a record records.
type Kind string

// The record kinds. A kind is never renamed once shipped: auditors search by it.
//
// An approval request's life is one kind per event, the approval engine's own names:
// approval_requested (the CONSTRAIN decision opened it), approval_vote (one approval of an N-of-M
// request still short of N), approval_resolved (pending → approved, denied or expired),
// approval_consumed (the grant was used by its one call, or expired unused), approval_aborted
// (an event above whose change did not commit).
const (
	KindDecision          Kind = "decision"
	KindApprovalRequested Kind = "approval_requested"
	KindApprovalVote      Kind = "approval_vote"
	KindApprovalResolved  Kind = "approval_resolved"
	KindApprovalConsumed  Kind = "approval_consumed"
	KindApprovalAborted   Kind = "approval_aborted"
	KindToolResult        Kind = "tool_result"
	KindStartup           Kind = "startup"
	KindShutdown          Kind = "shutdown"
	KindRecovery          Kind = "recovery"
	KindKeyRotation       Kind = "key_rotation"
	// KindAlert is an alert raised by the alert engine watching the ledger (internal/alert).
	KindAlert Kind = "alert"
)

// Kinds lists every record kind, in the order docs/ledger.md lists them.
var Kinds = []Kind{KindDecision, KindApprovalRequested, KindApprovalVote, KindApprovalResolved,
	KindApprovalConsumed, KindApprovalAborted, KindToolResult, KindStartup, KindShutdown,
	KindRecovery, KindKeyRotation, KindAlert}

// Valid reports whether k is one of the known kinds.
func (k Kind) Valid() bool {
	switch k {
	case KindDecision, KindApprovalRequested, KindApprovalVote, KindApprovalResolved,
		KindApprovalConsumed, KindApprovalAborted, KindToolResult,
		KindStartup, KindShutdown, KindRecovery, KindKeyRotation, KindAlert:
		return true
	}
	return false
}

// Event is the kind a reader should file r under. Ledgers written before approval votes,
// consumptions and aborts had kinds of their own recorded them as approval_resolved with the
// event's name in reason; Event names them as a record written today would be. Their bytes, and
// so their hashes, are unchanged: only the reading is.
func (r *Record) Event() Kind {
	if r.Kind == KindApprovalResolved {
		switch k := Kind(r.Reason); k {
		case KindApprovalVote, KindApprovalConsumed, KindApprovalAborted:
			return k
		}
	}
	return r.Kind
}

// Principal is an agent or a user as the gateway knew it when it decided.
type Principal struct {
	ID string `json:"id"`
	// Verified is true when a credential proved the identity; false when the caller merely
	// asserted it (e.g. an X-On-Behalf-Of header the agent set).
	Verified bool `json:"verified"`
	// Method names how it was established: "api_key", "jwt", "mtls", "asserted", ...
	Method string `json:"method,omitempty"`
}

// Condition is one policy condition evaluated for the decision and its result.
type Condition struct {
	Expr   string `json:"expr"`
	Result bool   `json:"result"`
	Detail string `json:"detail,omitempty"`
}

// Policy is what the policy engine did: which rule matched (or why none did) and every
// condition it evaluated on the way.
type Policy struct {
	Version    string      `json:"version,omitempty"`
	Rule       string      `json:"rule,omitempty"`
	NoMatch    string      `json:"no_match,omitempty"`
	Conditions []Condition `json:"conditions,omitempty"`
}

// Finding is a threat finding from parameter inspection. Evidence must already be redacted by
// the detector (inspect.Finding's contract); the ledger stores it as given.
type Finding struct {
	Kind     string       `json:"kind"`
	Severity threat.Level `json:"severity"`
	Path     string       `json:"path,omitempty"`
	Evidence string       `json:"evidence,omitempty"`
	Score    float64      `json:"score,omitempty"`
}

// Anomaly is one behavioural signal and its score.
type Anomaly struct {
	Signal string  `json:"signal"`
	Score  float64 `json:"score"`
}

// Outcome is what happened when (if) the tool ran.
type Outcome struct {
	Ran        bool   `json:"ran"`
	Success    bool   `json:"success"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms,omitempty"`
}

// Approval carries the human-in-the-loop details of a CONSTRAIN decision.
type Approval struct {
	ID          string     `json:"id,omitempty"`
	Approvers   []string   `json:"approvers,omitempty"`    // who may approve (requested)
	RequestedBy string     `json:"requested_by,omitempty"` // the agent whose call is held
	Approver    string     `json:"approver,omitempty"`     // the approver who voted, approved or denied; never the agent
	Result      string     `json:"result,omitempty"`       // the request's state after the event: pending, approved, denied, expired, consumed
	Comment     string     `json:"comment,omitempty"`
	RequestedAt *time.Time `json:"requested_at,omitempty"`
	ResolvedAt  *time.Time `json:"resolved_at,omitempty"`
	WaitMS      int64      `json:"wait_ms,omitempty"` // time to approval
}

// KeyRotation records a change of the checkpoint signing key. Both are note verifier keys.
type KeyRotation struct {
	OldKey string `json:"old_key"`
	NewKey string `json:"new_key"`
}

// Alert is what an alert rule saw. The record's agent and tool name what it is about (when it is
// about one); its message is the alert's text.
type Alert struct {
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	// Count is how many times the rule matched for this alert: 1, or more when a flood of
	// matches was folded into one alert.
	Count int       `json:"count"`
	First time.Time `json:"first"` // the first matching record's time
	Last  time.Time `json:"last"`  // the last one's
	// Seq is the ledger seq of the record that raised the alert, when one did.
	Seq uint64 `json:"seq,omitempty"`
}

// Recovery records what start-up found after an unclean stop.
type Recovery struct {
	Reason      string `json:"reason"`
	FoundSize   uint64 `json:"found_size"`             // records found at start
	Checkpoint  uint64 `json:"checkpoint"`             // size of the latest checkpoint found
	TrimmedFrom uint64 `json:"trimmed_from,omitempty"` // first seq trimmed (with Trimmed > 0)
	Trimmed     int    `json:"trimmed,omitempty"`      // torn records removed
}

// Record is one ledger entry. Field order is the encoding order; "v", "seq" and "prev" come
// first so that verification can read them without decoding the rest.
type Record struct {
	V    int    `json:"v"`
	Seq  uint64 `json:"seq"`
	Prev string `json:"prev"` // hex RFC 6962 leaf hash of record seq-1; "" for seq 0

	Time       time.Time  `json:"time"`
	Kind       Kind       `json:"kind"`
	DecisionID string     `json:"decision_id,omitempty"` // links every record of one tool call
	RequestID  string     `json:"request_id,omitempty"`
	Source     string     `json:"source,omitempty"` // originating system: "mcp", "llm", "http", "sdk", ...
	Agent      *Principal `json:"agent,omitempty"`
	User       *Principal `json:"user,omitempty"`

	Tool string `json:"tool,omitempty"`
	// Params are the call's parameters after redaction. ParamsSize is the size in bytes of the
	// parameters as received; ParamsHash identifies them (see Redaction in docs/ledger.md).
	Params        json.RawMessage `json:"params,omitempty"`
	ParamsSize    int             `json:"params_size,omitempty"`
	ParamsHash    string          `json:"params_hash,omitempty"`
	Redacted      []string        `json:"redacted,omitempty"`       // JSON paths whose values were replaced
	ParamsDropped string          `json:"params_dropped,omitempty"` // why params were not stored at all

	PolicyVersion string       `json:"policy_version,omitempty"`
	Policy        *Policy      `json:"policy,omitempty"`
	Decision      string       `json:"decision,omitempty"`    // allow, deny, constrain, log (redact: LLM conversation text sent with its secrets replaced)
	Enforcement   string       `json:"enforcement,omitempty"` // the policy's enforcement action for the decision: execute_tool, record_but_allow, log_and_queue_for_approval, log_and_return_error
	Reason        string       `json:"reason,omitempty"`
	ThreatLevel   threat.Level `json:"threat_level,omitempty"`
	Findings      []Finding    `json:"findings,omitempty"`
	Anomalies     []Anomaly    `json:"anomalies,omitempty"`
	// Inputs are what the policy evaluation read that the fields above do not hold (format
	// version 2; on decisions the policy decided), so that a replay decides from the record.
	Inputs *Inputs `json:"inputs,omitempty"`
	// Shadow is the candidate policy set's verdict on this call when it differs from the
	// enforced one (policy shadow rollout, docs/policy-lifecycle.md); never enforced.
	Shadow *Shadow `json:"shadow,omitempty"`

	// Session is the session the call belongs to and the labels it was decided under (or, on a
	// tool result, the labels the result brought).
	Session *Session `json:"session,omitempty"`

	Outcome     *Outcome     `json:"outcome,omitempty"`
	Approval    *Approval    `json:"approval,omitempty"`
	KeyRotation *KeyRotation `json:"key_rotation,omitempty"`
	Recovery    *Recovery    `json:"recovery,omitempty"`
	Alert       *Alert       `json:"alert,omitempty"`
	Message     string       `json:"message,omitempty"`

	// Secrets are redaction directives for Append, applied to Params with the secret paths
	// before anything is encoded; never encoded themselves.
	Secrets []Secret `json:"-"`
	// ParamsValue, when set, is Params as the caller's one strict parse decoded them
	// (jsonx.DecodeObject: duplicate keys and invalid UTF-8 refused, numbers as written).
	// Append then redacts and stores that value in its canonical encoding (jsonx.AppendCanonical,
	// the bytes an approval digest hashes) instead of parsing Params again; Params still give
	// the size and the keyed hash. Never encoded; Append clears it. It is not modified.
	ParamsValue map[string]any `json:"-"`
}

// Shadow is what the candidate (shadow) policy set would have decided: its version, decision
// and deciding rule ("" for its default action).
type Shadow struct {
	Version  string `json:"version"`
	Decision string `json:"decision"`
	Rule     string `json:"rule,omitempty"`
}

// Inputs are what a decision's policy evaluation read beyond the record's time, tool,
// parameters, threat level, findings, anomalies and session: the agent's roles and permissions,
// the invoking user's permissions and attributes, the tool's configured classification, the
// behaviour counts and hour baseline, and the zone of the gateway's clock. Empty fields are
// omitted; in a version 2 record an omitted field means the evaluation read nothing there (no
// roles, no user, no behaviour tracking, a UTC clock).
type Inputs struct {
	Roles           []string            `json:"roles,omitempty"`
	Permissions     []string            `json:"permissions,omitempty"`
	RolePermissions map[string][]string `json:"role_permissions,omitempty"`
	UserPermissions []string            `json:"user_permissions,omitempty"`
	// UserAttributes are redacted by Append with the parameters' rules (a sensitive name's
	// values replaced, hashed with the hash key); RedactedAttributes names those replaced.
	UserAttributes     map[string][]string `json:"user_attributes,omitempty"`
	RedactedAttributes []string            `json:"redacted_attributes,omitempty"`
	ToolClassification string              `json:"tool_classification,omitempty"`
	// Calls maps a counted window, in minutes, to the agent's calls to the tool in it before
	// this one — the windows the enforced policy read; Baseline is the hour-of-week baseline's
	// verdict ("learning", "usual", "unusual"). Both are set only under behaviour tracking.
	Calls    map[string]int `json:"calls,omitempty"`
	Baseline string         `json:"baseline,omitempty"`
	// ZoneOffset is the gateway clock's UTC offset in seconds at the decision's time (an
	// expression reading time.getHours() reads the clock's zone).
	ZoneOffset int `json:"zone_offset,omitempty"`
}

// The hour baseline's verdicts in Inputs.Baseline.
const (
	BaselineLearning = "learning"
	BaselineUsual    = "usual"
	BaselineUnusual  = "unusual"
)

// Session is a record's session: its ID ("" the agent's default session) and labels.
type Session struct {
	ID     string   `json:"id,omitempty"`
	Labels []string `json:"labels,omitempty"`
}

// Errors callers branch on.
var (
	// ErrMalformedRecord: stored bytes are not a record in the canonical encoding.
	ErrMalformedRecord = errors.New("malformed record")
)

// writeVersion is the format version records are written in: FormatVersion, except in tests
// that write a log as an older binary did (SetWriteVersion).
var writeVersion = FormatVersion

// emptyHeader is what json.Marshal writes for the header of a record with Seq 0 and Prev "",
// after the version digit.
var emptyHeader = []byte(`,"seq":0,"prev":"",`)

// encodeBody encodes everything of r after the header, starting with the first field after
// "prev" and ending with the closing brace. It is the expensive part of encoding and runs in
// the caller's goroutine; the single writer only prepends the header.
func encodeBody(r *Record) ([]byte, error) {
	c := *r
	c.V, c.Seq, c.Prev = writeVersion, 0, ""
	if writeVersion < 2 {
		c.Inputs = nil // version 1 had no such field
	}
	c.Time = c.Time.UTC()
	// segmentio's encoder writes the same bytes as encoding/json.Marshal (HTML escaping, sorted
	// map keys, the same number forms; TestEncodeIsCanonicalMarshal and FuzzEncodeMatchesStdlib
	// hold it to that) at a fraction of the cost: it runs once per decision.
	b, err := segjson.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	const p0 = `{"v":`
	if len(b) < len(p0)+1 || string(b[:len(p0)]) != p0 || b[len(p0)] != byte('0'+writeVersion) || !bytes.HasPrefix(b[len(p0)+1:], emptyHeader) {
		return nil, fmt.Errorf("encode record: unexpected header %.40q", b)
	}
	return b[len(p0)+1+len(emptyHeader):], nil
}

// appendHeader writes the canonical header for seq and prev (nil for seq 0) followed by body.
func appendHeader(dst []byte, seq uint64, prev []byte, body []byte) []byte {
	dst = append(dst, `{"v":`...)
	dst = append(dst, byte('0'+writeVersion))
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"prev":"`...)
	dst = hex.AppendEncode(dst, prev)
	dst = append(dst, `",`...)
	return append(dst, body...)
}

// Encode returns the canonical bytes of r (its Seq and Prev as set). The writer produces the
// same bytes by prepending the header to encodeBody's output; a test keeps the two equal.
func Encode(r *Record) ([]byte, error) {
	body, err := encodeBody(r)
	if err != nil {
		return nil, err
	}
	prev, err := decodePrev(r.Prev)
	if err != nil {
		return nil, err
	}
	return appendHeader(nil, r.Seq, prev, body), nil
}

func decodePrev(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) != 2*sha256.Size {
		return nil, fmt.Errorf("%w: prev is %d characters, want %d", ErrMalformedRecord, len(s), 2*sha256.Size)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: prev: %v", ErrMalformedRecord, err)
	}
	return b, nil
}

// Header is the part of a record verification needs: its format version, its seq and the hash
// it links to.
type Header struct {
	V    int
	Seq  uint64
	Prev [sha256.Size]byte
	// HasPrev is false for the "" prev of record 0.
	HasPrev bool
}

// ParseHeader reads seq and prev from the start of a record's canonical bytes without decoding
// the rest. It rejects anything but the canonical header (no spaces, no leading zeros,
// lower-case hex) so that one record has exactly one spelling.
func ParseHeader(data []byte) (Header, error) {
	var h Header
	const p0, p1, p2 = `{"v":`, `,"seq":`, `,"prev":"`
	if !bytes.HasPrefix(data, []byte(p0)) || len(data) < len(p0)+1+len(p1) ||
		data[len(p0)] < '0'+MinFormatVersion || data[len(p0)] > '0'+FormatVersion ||
		!bytes.HasPrefix(data[len(p0)+1:], []byte(p1)) {
		return h, fmt.Errorf("%w: does not start with %s<%d to %d>%s", ErrMalformedRecord, p0, MinFormatVersion, FormatVersion, p1)
	}
	h.V = int(data[len(p0)] - '0')
	i := len(p0) + 1 + len(p1)
	j := i
	for j < len(data) && data[j] >= '0' && data[j] <= '9' {
		j++
	}
	if j == i || j-i > 20 || (data[i] == '0' && j-i > 1) {
		return h, fmt.Errorf("%w: seq is not a canonical number", ErrMalformedRecord)
	}
	seq, err := strconv.ParseUint(string(data[i:j]), 10, 64)
	if err != nil {
		return h, fmt.Errorf("%w: seq: %v", ErrMalformedRecord, err)
	}
	h.Seq = seq
	if !bytes.HasPrefix(data[j:], []byte(p2)) {
		return h, fmt.Errorf("%w: prev does not follow seq", ErrMalformedRecord)
	}
	k := j + len(p2)
	switch {
	case len(data) >= k+2 && data[k] == '"' && data[k+1] == ',':
		// empty prev
	case len(data) >= k+2*sha256.Size+2 && data[k+2*sha256.Size] == '"' && data[k+2*sha256.Size+1] == ',':
		for _, c := range data[k : k+2*sha256.Size] {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return h, fmt.Errorf("%w: prev is not lower-case hex", ErrMalformedRecord)
			}
		}
		if _, err := hex.Decode(h.Prev[:], data[k:k+2*sha256.Size]); err != nil {
			return h, fmt.Errorf("%w: prev: %v", ErrMalformedRecord, err)
		}
		h.HasPrev = true
	default:
		return h, fmt.Errorf("%w: prev is not 64 hex digits or empty", ErrMalformedRecord)
	}
	if data[len(data)-1] != '}' {
		return h, fmt.Errorf("%w: does not end with }", ErrMalformedRecord)
	}
	return h, nil
}

// ParseRecord decodes a record's stored bytes strictly: canonical header, valid JSON, no
// unknown fields, no trailing data, a known kind. It never re-encodes to check anything.
func ParseRecord(data []byte) (*Record, error) {
	h, err := ParseHeader(data)
	if err != nil {
		return nil, err
	}
	r, err := decodeRecord(data)
	if err != nil {
		return nil, err
	}
	if r.V != h.V {
		return nil, fmt.Errorf("%w: header fields repeated with other values", ErrMalformedRecord)
	}
	if r.V < FormatVersion && r.Inputs != nil {
		return nil, fmt.Errorf("%w: inputs in a format version %d record", ErrMalformedRecord, r.V)
	}
	if r.Seq != h.Seq || (r.Prev != "") != h.HasPrev {
		return nil, fmt.Errorf("%w: header fields repeated with other values", ErrMalformedRecord)
	}
	if !r.Kind.Valid() {
		return nil, fmt.Errorf("%w: unknown kind %q", ErrMalformedRecord, r.Kind)
	}
	return r, nil
}

// decodeRecord reads a record's JSON as encoding/json reads it (fields matched up to case, the
// last of a repeated key, invalid UTF-8 as U+FFFD, no unknown field, nothing after the value):
// the reading the format is defined by. Every committed record is read again by the alert rules'
// tailer, so it runs once per decision: segmentio's decoder reads the record (several times
// faster) in one pass, into recordRead, whose times are read by time.Time's own parser (segmentio
// parses times more leniently). Whatever the fast reading refuses is read by encoding/json,
// whose verdict and error stand. FuzzParseRecordMatchesStdlib holds the two to the same records
// and the same refusals.
func decodeRecord(data []byte) (*Record, error) {
	rr := new(recordRead)
	if rest, err := segjson.Parse(data, rr, segjson.DisallowUnknownFields); err == nil && onlySpace(rest) {
		return rr.record(), nil
	}
	r := new(Record)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedRecord, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data after the record", ErrMalformedRecord)
	}
	return r, nil
}

// onlySpace reports whether b holds nothing but JSON whitespace.
func onlySpace(b []byte) bool { return len(bytes.Trim(b, " \t\r\n")) == 0 }

// recordRead is a Record as the fast reading decodes it: the record embedded, and its
// time-valued members (TestRecordTimesCoverRecord keeps the list whole) shadowed by fields of
// the same JSON names one level up, which win over the embedded ones as encoding/json's rules
// (and segmentio's) say, and are read by time.Time's UnmarshalJSON.
type recordRead struct {
	Record
	Time     stdTime       `json:"time"`
	Approval *approvalRead `json:"approval"`
	Alert    *alertRead    `json:"alert"`
}

type approvalRead struct {
	Approval
	RequestedAt *stdTime `json:"requested_at"`
	ResolvedAt  *stdTime `json:"resolved_at"`
}

type alertRead struct {
	Alert
	First stdTime `json:"first"`
	Last  stdTime `json:"last"`
}

// record returns the record read, its times put in place.
func (rr *recordRead) record() *Record {
	r := &rr.Record
	r.Time = rr.Time.t
	if a := rr.Approval; a != nil {
		a.Approval.RequestedAt, a.Approval.ResolvedAt = a.RequestedAt.ptr(), a.ResolvedAt.ptr()
		r.Approval = &a.Approval
	}
	if a := rr.Alert; a != nil {
		a.Alert.First, a.Alert.Last = a.First.t, a.Last.t
		r.Alert = &a.Alert
	}
	return r
}

// stdTime is a time.Time read by time.Time's own parser: a distinct type, so segmentio's decoder
// calls UnmarshalJSON instead of its own time parsing.
type stdTime struct{ t time.Time }

func (s *stdTime) UnmarshalJSON(b []byte) error { return s.t.UnmarshalJSON(b) }

func (s *stdTime) ptr() *time.Time {
	if s == nil {
		return nil
	}
	return &s.t
}

// LeafHash is the RFC 6962 leaf hash of a record's stored bytes: SHA-256(0x00 || data).
// It is also what the next record's prev holds and what tlog.RecordHash computes.
func LeafHash(data []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
