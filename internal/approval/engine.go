package approval

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Engine runs the approval lifecycle over a Store. It is safe for concurrent use; all
// serialisation happens in the store's compare-and-set Update.
type Engine struct {
	store         Store
	rec           Recorder
	notify        Notifier
	announce      Announcer
	now           func() time.Time
	isAgent       func(ctx context.Context, id string) (bool, error)
	strictVersion bool
	// maxPending caps each agent's pending requests (0: no cap); pendingMu serialises the count
	// and the create that follows it, per agent, in this process.
	maxPending int
	pendingMu  keyedMutex
	// matchMu serialises RequestMatching per call (agent, tool, digest), in this process.
	matchMu keyedMutex

	// recordTimeout bounds a state change — the store transaction and its ledger event — on
	// the engine's own context, not the caller's (an approver's HTTP request).
	recordTimeout time.Duration
}

// DefaultRecordTimeout bounds a state change when WithRecordTimeout does not say.
const DefaultRecordTimeout = 5 * time.Second

// WithRecordTimeout bounds each state change (its store transaction and its ledger event) on the
// engine's own context: a caller that hangs up mid-COMMIT does not abort a change whose event is
// already on the record. d <= 0: DefaultRecordTimeout.
func WithRecordTimeout(d time.Duration) Option { return func(e *Engine) { e.recordTimeout = d } }

// Option configures an Engine.
type Option func(*Engine)

// WithNotifier sets the long-poll notifier (default: a new in-process Hub).
func WithNotifier(n Notifier) Option { return func(e *Engine) { e.notify = n } }

// WithAnnouncer sets who hears of new pending requests (e.g. a *Webhook).
func WithAnnouncer(a Announcer) Option { return func(e *Engine) { e.announce = a } }

// WithClock replaces time.Now (tests use testing/synctest instead where they can).
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// WithAgentLookup lets the engine ask the identity registry whether an approver ID belongs to an
// agent, in addition to the approver's Kind. An error from it refuses the approval.
func WithAgentLookup(f func(ctx context.Context, id string) (bool, error)) Option {
	return func(e *Engine) { e.isAgent = f }
}

// WithStrictPolicyVersion makes a grant redeemable only under the exact policy version it was
// requested under. Default off: see Key and docs/approvals.md for why.
func WithStrictPolicyVersion(strict bool) Option { return func(e *Engine) { e.strictVersion = strict } }

// WithMaxPendingPerAgent caps the requests one agent may have pending at once: Request refuses
// the next with ErrTooManyPending. A flood of requests buries the one an approver should see and
// wears approvers down; a cap bounds both. n <= 0: no cap.
//
// The count and the create are serialised per agent within one engine; replicas sharing a store
// each check before creating, so together they may overshoot by at most one request per replica.
func WithMaxPendingPerAgent(n int) Option { return func(e *Engine) { e.maxPending = n } }

// New returns an engine over store that records every state change with rec.
func New(store Store, rec Recorder, opts ...Option) (*Engine, error) {
	if store == nil || rec == nil {
		return nil, fmt.Errorf("new approval engine: %w: store and recorder are required", ErrInvalid)
	}
	e := &Engine{store: store, rec: rec, notify: NewHub(), now: time.Now}
	for _, o := range opts {
		o(e)
	}
	if e.recordTimeout <= 0 {
		e.recordTimeout = DefaultRecordTimeout
	}
	return e, nil
}

// Input is what the pipeline knows when a decision is CONSTRAIN.
type Input struct {
	DecisionID   string
	Agent        string
	User         string
	UserVerified bool
	Tool         string
	// Params is the call's real parameters (JSON). Only their digest is kept. Alternatively pass
	// ParamsDigest as computed by Digest; when both are given they must agree.
	Params       json.RawMessage
	ParamsDigest string
	// RedactedParams is the redacted copy approvers see and the store keeps (required: the
	// engine never stores unredacted parameters).
	RedactedParams json.RawMessage
	Rule           string
	Conditions     []Condition
	ThreatLevel    threat.Level
	Findings       []inspect.Finding
	Signals        []Signal
	PolicyVersion  string
	Required       int           // N of N-of-M; 0 means 1
	Expiry         time.Duration // pending lifetime; 0 means DefaultExpiry
	GrantTTL       time.Duration // approved-grant lifetime; 0 means DefaultGrantTTL
	Labels         map[string]string
	// Opened, when set, runs inside the new request's transaction before its approval_requested
	// event is recorded: the pipeline writes the decision that opens the request there, so the
	// ledger holds the decision first and the request after it. An error aborts the request.
	Opened func(created Request) error
}

// Request creates a durable pending approval request for a CONSTRAIN decision and returns it.
// The approval_requested event is recorded before the request commits.
func (e *Engine) Request(ctx context.Context, in Input) (Request, error) {
	digest := in.ParamsDigest
	if in.Params != nil {
		d, err := Digest(in.Params)
		if err != nil {
			return Request{}, fmt.Errorf("request approval: params: %w", err)
		}
		if digest != "" && digest != d {
			return Request{}, fmt.Errorf("request approval: %w: params digest does not match params", ErrInvalid)
		}
		digest = d
	}
	if in.RedactedParams == nil {
		return Request{}, fmt.Errorf("request approval: %w: redacted params are required", ErrInvalid)
	}
	shown, err := Canonicalize(in.RedactedParams)
	if err != nil {
		return Request{}, fmt.Errorf("request approval: redacted params: %w", err)
	}
	expiry, grantTTL, required := in.Expiry, in.GrantTTL, in.Required
	if expiry == 0 {
		expiry = DefaultExpiry
	}
	if grantTTL == 0 {
		grantTTL = DefaultGrantTTL
	}
	if required == 0 {
		required = 1
	}
	if expiry < 0 {
		return Request{}, fmt.Errorf("request approval: %w: negative expiry %v", ErrInvalid, expiry)
	}
	id, err := NewID()
	if err != nil {
		return Request{}, fmt.Errorf("request approval: %w", err)
	}
	now := e.now()
	r := Request{
		ID: id, DecisionID: in.DecisionID,
		Agent: in.Agent, User: in.User, UserVerified: in.UserVerified, Tool: in.Tool,
		Params: shown, ParamsDigest: digest,
		Rule: in.Rule, Conditions: in.Conditions, ThreatLevel: in.ThreatLevel,
		Findings: in.Findings, Signals: in.Signals, PolicyVersion: in.PolicyVersion,
		Required: required, GrantTTL: grantTTL, Labels: in.Labels,
		CreatedAt: now, ExpiresAt: now.Add(expiry), State: Pending,
	}
	if err := r.Validate(); err != nil {
		return Request{}, fmt.Errorf("request approval: %w", err)
	}
	if e.maxPending > 0 {
		unlock := e.pendingMu.lock(r.Agent)
		defer unlock()
		if err := e.checkPending(ctx, r.Agent, now); err != nil {
			return Request{}, fmt.Errorf("request approval: %w", err)
		}
	}
	c, cancel := e.begin(ctx)
	defer cancel()
	err = c.end(e.store.Create(c.ctx, r, func(stored Request) error {
		if in.Opened != nil {
			if err := in.Opened(stored.Clone()); err != nil {
				return err
			}
		}
		return c.record(Event{
			Kind: KindRequested, ApprovalID: r.ID, DecisionID: r.DecisionID, To: Pending,
			Actor: r.Agent, At: now, PolicyVersion: r.PolicyVersion, Request: stored,
		})
	}))
	if err != nil {
		return Request{}, fmt.Errorf("request approval: %w", err)
	}
	if e.announce != nil {
		e.announce.Announce(r.Clone())
	}
	return r, nil
}

// Approve records a's approval of request id. With N-of-M the request is approved once N
// distinct approvers have approved; until then it stays pending. The returned request is the
// state after the vote.
func (e *Engine) Approve(ctx context.Context, id string, a Approver, comment string) (Request, error) {
	return e.vote(ctx, id, a, true, comment)
}

// Deny records a's denial of request id. One denial is final: with N-of-M, any approver in
// scope can veto, even after others approved (but before the request was approved).
func (e *Engine) Deny(ctx context.Context, id string, a Approver, comment string) (Request, error) {
	return e.vote(ctx, id, a, false, comment)
}

func (e *Engine) vote(ctx context.Context, id string, a Approver, approve bool, comment string) (Request, error) {
	op := "deny"
	if approve {
		op = "approve"
	}
	if len(comment) > MaxComment || !utf8.ValidString(comment) {
		return Request{}, fmt.Errorf("%s %s: %w: comment must be valid UTF-8 of at most %d bytes", op, id, ErrInvalid, MaxComment)
	}
	if a.Kind == Human && e.isAgent != nil {
		agent, err := e.isAgent(ctx, a.name())
		if err != nil {
			return Request{}, fmt.Errorf("%s %s: agent lookup: %w", op, id, err)
		}
		if agent {
			return Request{}, fmt.Errorf("%s %s: approver %q is registered as an agent: %w", op, id, a.ID, ErrAgentApprover)
		}
	}
	expired := false
	c, cancel := e.begin(ctx)
	defer cancel()
	r, err := e.store.Update(c.ctx, id, func(r *Request) error {
		now := e.now()
		if ok, err := e.expireIfDue(c, r, now); err != nil || ok {
			expired = ok
			return err
		}
		if r.State != Pending {
			return finalError(r.State)
		}
		if err := a.mayApprove(r); err != nil {
			return err
		}
		for _, v := range r.Votes {
			if SamePerson(v.Approver, a.ID) && (approve || !v.Approve) {
				return fmt.Errorf("approver %q: %w", a.ID, ErrDuplicateVote)
			}
		}
		r.Votes = append(r.Votes, Vote{Approver: a.ID, Approve: approve, Comment: comment, At: now})
		ev := Event{
			Kind: KindVote, ApprovalID: r.ID, DecisionID: r.DecisionID, From: Pending, To: Pending,
			Actor: a.ID, Comment: comment, At: now, TimeToResolution: now.Sub(r.CreatedAt),
			PolicyVersion: r.PolicyVersion,
		}
		switch {
		case !approve:
			r.State, r.ResolvedAt, r.ResolvedBy, r.Comment = Denied, now, a.ID, comment
			ev.Kind, ev.To = KindResolved, Denied
		case r.Approvals() >= r.Required:
			r.State, r.ResolvedAt, r.ResolvedBy, r.Comment = Approved, now, a.ID, comment
			r.GrantExpiresAt = now.Add(r.GrantTTL)
			ev.Kind, ev.To = KindResolved, Approved
		}
		ev.Request = r.Clone()
		ev.Request.Revision++
		return c.record(ev)
	})
	if err = c.end(err); err != nil {
		return Request{}, fmt.Errorf("%s %s: %w", op, id, err)
	}
	e.notify.Notify(id)
	if expired {
		return r, fmt.Errorf("%s %s: %w", op, id, ErrExpired)
	}
	return r, nil
}

// Key is what the pipeline knows about the call it is re-evaluating when it redeems a grant:
// the call's identities and parameters digest, and how the current policy decided it.
//
// Binding: Agent, User, Tool and ParamsDigest must equal the request's; a grant for a verified
// user is not redeemable by a call whose user is only asserted; Rule must be the rule that
// constrained the original request and Required (the current rule's N) must not exceed the
// approvals the grant holds. PolicyVersion is recorded with the redemption; it must equal the
// request's only under WithStrictPolicyVersion. The pipeline calls Redeem only when the
// current policy still says CONSTRAIN: a DENY under the current policy never reaches here.
type Key struct {
	Agent         string
	User          string
	UserVerified  bool
	Tool          string
	ParamsDigest  string
	PolicyVersion string
	Rule          string
	Required      int
}

// MismatchError says which binding of a grant a call failed. It wraps ErrMismatch.
type MismatchError struct {
	Field string
}

func (m *MismatchError) Error() string { return "approval: call does not match the grant: " + m.Field }

// Unwrap returns ErrMismatch.
func (m *MismatchError) Unwrap() error { return ErrMismatch }

// Redeem consumes the grant of request id for the call described by k, atomically and at most
// once. It returns nil only if the request is approved, its grant unexpired, unused, and k
// matches it; the request is then consumed. Otherwise it returns ErrPending, ErrDenied,
// ErrExpired, ErrConsumed or a *MismatchError, and the grant is unchanged (except that an
// overdue one is recorded as expired). A mismatch never burns the grant: the original call may
// still be made.
func (e *Engine) Redeem(ctx context.Context, id string, k Key) (Request, error) {
	return e.RedeemWith(ctx, id, k, nil)
}

// RedeemWith is Redeem with then, which runs inside the store's transaction before the
// approval_consumed event is recorded and the consumption commits; an error from it aborts the
// redemption and the grant stays usable. The guard writes the decision record of the redeeming
// call there: the grant is consumed in the same step as the record that says the call may run
// (the decision first, then the consumption it causes), so a record that cannot be written never
// costs the grant.
func (e *Engine) RedeemWith(ctx context.Context, id string, k Key, then func(granted Request) error) (Request, error) {
	expired := false
	c, cancel := e.begin(ctx)
	defer cancel()
	r, err := e.store.Update(c.ctx, id, func(r *Request) error {
		now := e.now()
		if ok, err := e.expireIfDue(c, r, now); err != nil || ok {
			expired = ok
			return err
		}
		if r.State != Approved {
			return stateError(r.State)
		}
		if err := e.match(r, k); err != nil {
			return err
		}
		r.State, r.ConsumedAt, r.ConsumedPolicyVersion = Consumed, now, k.PolicyVersion
		ev := Event{
			Kind: KindConsumed, ApprovalID: r.ID, DecisionID: r.DecisionID, From: Approved, To: Consumed,
			Actor: k.Agent, At: now, PolicyVersion: k.PolicyVersion, Request: r.Clone(),
		}
		ev.Request.Revision++
		if then != nil {
			if err := then(ev.Request); err != nil {
				return err
			}
		}
		return c.record(ev)
	})
	if err = c.end(err); err != nil {
		return Request{}, fmt.Errorf("redeem %s: %w", id, err)
	}
	e.notify.Notify(id)
	if expired {
		return r, fmt.Errorf("redeem %s: %w", id, ErrExpired)
	}
	return r, nil
}

func (e *Engine) match(r *Request, k Key) error {
	required := k.Required
	if required == 0 {
		required = 1
	}
	switch {
	case k.Agent != r.Agent:
		return &MismatchError{Field: "agent"}
	case k.User != r.User:
		return &MismatchError{Field: "user"}
	case r.UserVerified && !k.UserVerified:
		return &MismatchError{Field: "user_verified"}
	case k.Tool != r.Tool:
		return &MismatchError{Field: "tool"}
	case subtle.ConstantTimeCompare([]byte(k.ParamsDigest), []byte(r.ParamsDigest)) != 1:
		return &MismatchError{Field: "params_digest"}
	case k.Rule != r.Rule:
		return &MismatchError{Field: "rule"}
	case required > r.Approvals():
		return &MismatchError{Field: "required_approvals"}
	case e.strictVersion && k.PolicyVersion != r.PolicyVersion:
		return &MismatchError{Field: "policy_version"}
	}
	return nil
}

// expireIfDue moves r to Expired and records it when its deadline has passed. It reports
// whether it did.
func (e *Engine) expireIfDue(c *change, r *Request, now time.Time) (bool, error) {
	deadline, ok := r.Deadline()
	if !ok || now.Before(deadline) {
		return false, nil
	}
	from := r.State
	ev := Event{
		ApprovalID: r.ID, DecisionID: r.DecisionID, From: from, To: Expired,
		At: now, PolicyVersion: r.PolicyVersion,
	}
	r.State = Expired
	if from == Pending {
		r.ResolvedAt, r.ResolvedBy, r.Comment = now, "", "expired unresolved"
		ev.Kind, ev.Comment, ev.TimeToResolution = KindResolved, r.Comment, now.Sub(r.CreatedAt)
	} else {
		ev.Kind, ev.Comment = KindConsumed, "grant expired unused"
	}
	ev.Request = r.Clone()
	ev.Request.Revision++
	return true, c.record(ev)
}

func (e *Engine) record(ctx context.Context, ev Event) error {
	if err := e.rec.RecordApproval(ctx, ev); err != nil {
		return fmt.Errorf("%w: %s for %s: %w", ErrRecord, ev.Kind, ev.ApprovalID, err)
	}
	return nil
}

// Get returns request id, first recording its expiry if its deadline has passed.
func (e *Engine) Get(ctx context.Context, id string) (Request, error) {
	r, err := e.store.Get(ctx, id)
	if err != nil {
		return Request{}, err
	}
	if d, ok := r.Deadline(); ok && !e.now().Before(d) {
		return e.expire(ctx, id)
	}
	return r, nil
}

// List returns the requests matching f, oldest first. Overdue requests are listed in the state
// the store holds until the sweeper (ExpireDue) or a Get records their expiry.
func (e *Engine) List(ctx context.Context, f Filter) ([]Request, error) {
	rs, err := e.store.List(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	return rs, nil
}

func (e *Engine) expire(ctx context.Context, id string) (Request, error) {
	c, cancel := e.begin(ctx)
	defer cancel()
	r, err := e.store.Update(c.ctx, id, func(r *Request) error {
		ok, err := e.expireIfDue(c, r, e.now())
		if err == nil && !ok {
			return errNoChange
		}
		return err
	})
	err = c.end(err)
	if errors.Is(err, errNoChange) {
		return e.store.Get(ctx, id)
	}
	if err != nil {
		return Request{}, fmt.Errorf("expire %s: %w", id, err)
	}
	e.notify.Notify(id)
	return r, nil
}

// stateError is the sentinel for a request found in state s where an approved one was needed.
func stateError(s State) error {
	switch s {
	case Pending:
		return ErrPending
	case Denied:
		return ErrDenied
	case Expired:
		return ErrExpired
	case Consumed:
		return ErrConsumed
	}
	return fmt.Errorf("%w: state %q", ErrInvalid, s)
}

// finalError is the error for a vote on a request that is no longer pending: it wraps ErrFinal
// and the state's own sentinel, so a caller can branch on either.
func finalError(s State) error {
	if s == Approved {
		return fmt.Errorf("request is approved: %w", ErrFinal)
	}
	return fmt.Errorf("request is %s: %w: %w", s, ErrFinal, stateError(s))
}

// errNoChange aborts an Update that found nothing to do.
var errNoChange = errors.New("approval: no change")

// ExpireDue records the expiry of every pending request and unused grant whose deadline has
// passed, and returns how many it expired. The daemon runs it periodically (see Run); Get,
// Wait, Approve, Deny and Redeem also expire lazily, so correctness never depends on the sweep.
func (e *Engine) ExpireDue(ctx context.Context) (int, error) {
	due, err := e.store.List(ctx, Filter{States: []State{Pending, Approved}, DueBy: e.now()})
	if err != nil {
		return 0, fmt.Errorf("expire due approvals: %w", err)
	}
	n := 0
	var errs []error
	for _, r := range due {
		got, err := e.expire(ctx, r.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if got.State == Expired {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// Run sweeps expired requests every interval until ctx ends; it returns ctx's error. Errors of
// one sweep are reported to onErr (may be nil) and the next sweep tries again.
func (e *Engine) Run(ctx context.Context, interval time.Duration, onErr func(error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if _, err := e.ExpireDue(ctx); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

// Wait blocks until request id leaves pending (approved, denied or expired) or ctx ends, and
// returns the request. Callers bound it with a context deadline (the API's long-poll timeout);
// when ctx ends first Wait returns the still-pending request and ctx's error. A pending request
// whose expiry passes while waiting is expired by Wait itself, so it never waits past expiry.
func (e *Engine) Wait(ctx context.Context, id string) (Request, error) {
	ch, cancel := e.notify.Subscribe(id)
	defer cancel()
	for {
		r, err := e.Get(ctx, id)
		if err != nil {
			return Request{}, fmt.Errorf("wait %s: %w", id, err)
		}
		if r.State != Pending {
			return r, nil
		}
		timer := time.NewTimer(r.ExpiresAt.Sub(e.now()))
		select {
		case <-ch:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return r, fmt.Errorf("wait %s: %w", id, ctx.Err())
		}
		timer.Stop()
	}
}

// NewID returns a fresh approval ID: "apr_" and 26 base32 characters of 128 random bits.
// IDs are unguessable because the agent holds its own and must not find others'.
func NewID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new approval id: %w", err)
	}
	return "apr_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])), nil
}

// checkPending refuses a new request when agent already has maxPending requests pending. Requests
// past their deadline that the sweeper has not yet expired are not counted: they can no longer be
// approved, and counting them would let a stalled sweeper lock an agent out.
func (e *Engine) checkPending(ctx context.Context, agent string, now time.Time) error {
	// Overdue requests sort among the rest (oldest first), so read enough to see past them: at
	// most maxPending live ones are needed, and the overdue are skipped.
	rs, err := e.store.List(ctx, Filter{States: []State{Pending}, Agent: agent})
	if err != nil {
		return fmt.Errorf("count pending requests of %s: %w", agent, err)
	}
	live := 0
	for i := range rs {
		if rs[i].ExpiresAt.After(now) {
			live++
		}
	}
	if live >= e.maxPending {
		return fmt.Errorf("agent %s has %d pending requests (at most %d): %w", agent, live, e.maxPending, ErrTooManyPending)
	}
	return nil
}

// keyedMutex is a mutex per key, held only while in use.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns its unlock.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// MatchResult says what RequestMatching did with a call.
type MatchResult int

const (
	// Opened: no request matched; a new pending request was opened.
	Opened MatchResult = iota
	// Joined: the call joined a pending request for the same call; nothing new was opened.
	Joined
	// Redeemed: an approved grant for this exact call was consumed; the call may run once.
	Redeemed
)

// RequestMatching is Request for a caller that cannot carry an approval ID back — a model
// re-proposing a tool call through the LLM gateway only repeats the call. The call is matched
// by what the grant binds (k: agent, user, tool, canonical parameters digest, rule):
//
//   - the newest approved, unexpired grant k satisfies is redeemed (once, as RedeemWith, with
//     then run inside the redemption);
//   - else the newest live pending request of the same agent, user, tool and digest is joined,
//     so re-proposals while an approver decides do not pile up;
//   - else a new request is opened from in.
//
// Denied, expired and consumed requests are never matched: a re-proposal after a denial opens
// a new request, which an approver sees and may deny again. A grant lost to a concurrent
// redemption (another replica) falls through to joining or opening. Within one engine the
// lookup and the create are serialised per call, so concurrent identical proposals open one
// request.
func (e *Engine) RequestMatching(ctx context.Context, in Input, k Key, then func(granted Request) error) (Request, MatchResult, error) {
	if k.ParamsDigest == "" || k.Agent != in.Agent || k.Tool != in.Tool {
		return Request{}, Opened, fmt.Errorf("request matching approval: %w: key does not describe the call", ErrInvalid)
	}
	unlock := e.matchMu.lock(k.Agent + "\x00" + k.Tool + "\x00" + k.ParamsDigest)
	defer unlock()
	rs, err := e.store.List(ctx, Filter{States: []State{Approved, Pending}, Agent: k.Agent, Tool: k.Tool})
	if err != nil {
		return Request{}, Opened, fmt.Errorf("request matching approval: %w", err)
	}
	now := e.now()
	var pending *Request
	// Newest first: an approved grant wins over any pending request; among pending, the newest.
	for i := len(rs) - 1; i >= 0; i-- {
		r := &rs[i]
		if d, ok := r.Deadline(); !ok || !now.Before(d) || r.User != k.User ||
			subtle.ConstantTimeCompare([]byte(r.ParamsDigest), []byte(k.ParamsDigest)) != 1 {
			continue
		}
		if r.State == Pending {
			if pending == nil {
				pending = r
			}
			continue
		}
		if e.match(r, k) != nil {
			continue // bound to another rule or fewer approvals than the rule now needs
		}
		granted, err := e.RedeemWith(ctx, r.ID, k, then)
		switch {
		case err == nil:
			return granted, Redeemed, nil
		case errors.Is(err, ErrConsumed) || errors.Is(err, ErrExpired) || errors.Is(err, ErrMismatch):
			// Lost a race, or expired just now: look for another, or open a new request.
			continue
		default:
			return Request{}, Opened, fmt.Errorf("request matching approval: %w", err)
		}
	}
	if pending != nil {
		return *pending, Joined, nil
	}
	r, err := e.Request(ctx, in)
	return r, Opened, err
}

// change is one state change: a store transaction whose hook records its event in the ledger
// before the transaction commits, so a change that was not recorded is never committed.
//
// The converse — an event on the record for a change that did not commit (a failed COMMIT, a
// hook that failed after the event was written, a store that retried the transaction) — is
// closed by a compensating approval_aborted event, written after the store answered, naming the
// change that did not take effect. We chose this over recording after the commit: an event
// written first can be compensated, whereas a change committed first and then not recordable
// would be acted on (a grant redeemed, a request approved) with nothing on the record.
//
// The transaction and both events run on the engine's own bounded context (recordTimeout), not
// the caller's: a caller that hangs up mid-COMMIT does not abort a change already recorded.
type change struct {
	e   *Engine
	ctx context.Context
	// done are the events recorded by the transaction's latest attempt; stale those of earlier
	// attempts (each attempt records one event), which never commit.
	done, stale []Event
}

// begin starts a change on the engine's bounded context.
func (e *Engine) begin(ctx context.Context) (*change, context.CancelFunc) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.recordTimeout)
	return &change{e: e, ctx: cctx}, cancel
}

// record writes ev to the ledger; an error aborts the transaction.
func (c *change) record(ev Event) error {
	c.stale, c.done = append(c.stale, c.done...), c.done[:0]
	if err := c.e.record(c.ctx, ev); err != nil {
		return err
	}
	c.done = append(c.done, ev)
	return nil
}

// end compensates every recorded event whose change did not commit, given the store's answer
// err, and returns err (joined with any compensation that could not be written: the ledger then
// holds an uncompensated event, which the caller must know).
func (c *change) end(err error) error {
	aborted := c.stale
	if err != nil {
		aborted = append(aborted, c.done...)
	}
	if len(aborted) == 0 {
		return err
	}
	// A fresh bound: the transaction may have used up the first one.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), c.e.recordTimeout)
	defer cancel()
	why := "the change did not commit"
	if err != nil {
		why = "not committed: " + err.Error()
	}
	for _, ev := range aborted {
		back := ev.From
		if back == "" {
			back = "aborted" // a request that was never created has no state to return to
		}
		comp := Event{Kind: KindAborted, ApprovalID: ev.ApprovalID, DecisionID: ev.DecisionID, From: ev.To, To: back,
			Actor: ev.Actor, Comment: ev.Kind + " " + why, At: c.e.now(), PolicyVersion: ev.PolicyVersion, Request: ev.Request}
		comp.Request.State = back
		if cerr := c.e.record(ctx, comp); cerr != nil && err != nil {
			err = errors.Join(err, cerr)
		}
	}
	return err
}
