package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"iter"
	"math"
	"net/http"
	"strconv"
	"sync"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// CancelledAnswers keeps the answer to a request the agent cancelled over Streamable HTTP from
// reaching it, as MCP says ("the receiver of a cancellation should not send a response"). The
// go-sdk cancels the request's handler but still writes its answer: that answer is what ends
// the POST's event stream, and it is stored for resumption. So the filter sits around the SDK's
// HTTP handler and its event store: it notes the requests each POST carries and the
// notifications/cancelled naming them, and when the answer to a cancelled request is written
// it is left off the stream (which then ends with no answer) and stored empty (a resumed
// stream does not replay it). A request already answered when its cancellation arrives stays
// answered: the verdict is taken once, at the first sight of the answer.
//
// Only requests in flight are tracked (a cancellation for an id never sent, or already
// answered, changes nothing, and a later request reusing the id is answered). An entry goes
// when its answer has been written, when its POST ends after the answer, or with its session
// (an agent that hung up before the answer came keeps it until then).
type CancelledAnswers struct {
	maxBody int64
	mu      sync.Mutex
	reqs    map[reqKey]*reqState
	// cancelled counts, per session, entries cancelled and not yet answered: while a session
	// has none (nearly always), answers pass without being parsed.
	cancelled map[string]int
}

type reqKey struct{ session, id string }

type reqState struct {
	post      *http.Request // the POST that carried the request (told apart from a reused id)
	cancelled bool
	decided   bool // the answer was seen: drop is final
	drop      bool
}

// NewCancelledAnswers returns a filter reading POST bodies up to maxBody bytes (larger ones are
// refused by the SDK's handler anyway, and pass unread).
func NewCancelledAnswers(maxBody int64) *CancelledAnswers {
	return &CancelledAnswers{maxBody: maxBody, reqs: map[reqKey]*reqState{}, cancelled: map[string]int{}}
}

// Handler wraps the SDK's Streamable HTTP handler.
func (c *CancelledAnswers) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sid := r.Header.Get("Mcp-Session-Id")
		if sid == "" { // initialize (which cannot be cancelled) or no session at all
			next.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodPost {
			body, err := io.ReadAll(io.LimitReader(r.Body, c.maxBody+1))
			r.Body = readCloser{Reader: io.MultiReader(bytes.NewReader(body), r.Body), Closer: r.Body}
			if err == nil && int64(len(body)) <= c.maxBody {
				c.note(sid, r, body)
				defer c.postEnded(sid, r)
			}
		}
		next.ServeHTTP(&answerFilter{ResponseWriter: w, c: c, sid: sid}, r)
	})
}

type readCloser struct {
	io.Reader
	io.Closer
}

// wireMessage is what the filter reads of a JSON-RPC message.
type wireMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		RequestID json.RawMessage `json:"requestId"`
	} `json:"params"`
}

// messages decodes a POST body or an answer: one message or a batch. What does not decode is
// left to the SDK, which refuses it.
func messages(body []byte) []wireMessage {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		var batch []wireMessage
		if json.Unmarshal(body, &batch) != nil {
			return nil
		}
		return batch
	}
	var m wireMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	return []wireMessage{m}
}

// canonID is a JSON-RPC id as the go-sdk compares them: a string, or an integer (a number is
// read as a float and kept when integral, as the SDK's jsonrpc2.MakeID does). Anything else is
// "", which matches nothing.
func canonID(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return "s:" + s
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return ""
	}
	return "n:" + strconv.FormatInt(int64(f), 10)
}

// note records the requests a POST carries and marks those a cancellation in it names.
func (c *CancelledAnswers) note(sid string, post *http.Request, body []byte) {
	msgs := messages(body)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		switch {
		case m.Method == "notifications/cancelled" && len(m.ID) == 0:
			st, ok := c.reqs[reqKey{sid, canonID(m.Params.RequestID)}]
			if ok && !st.decided && !st.cancelled {
				st.cancelled = true
				c.cancelled[sid]++
			}
		case m.Method != "" && m.Method != "initialize" && len(m.ID) > 0:
			if id := canonID(m.ID); id != "" {
				k := reqKey{sid, id}
				c.del(k)
				c.reqs[k] = &reqState{post: post}
			}
		}
	}
}

// del forgets one request; c.mu is held.
func (c *CancelledAnswers) del(k reqKey) {
	st, ok := c.reqs[k]
	if !ok {
		return
	}
	delete(c.reqs, k)
	if st.cancelled {
		if c.cancelled[k.session]--; c.cancelled[k.session] <= 0 {
			delete(c.cancelled, k.session)
		}
	}
}

// postEnded forgets the POST's requests. A POST that ends on its own has had every request
// answered; one whose agent hung up keeps the requests still to be answered, so an answer is
// judged when it is stored for the agent to resume.
func (c *CancelledAnswers) postEnded(sid string, post *http.Request) {
	whole := post.Context().Err() == nil
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, st := range c.reqs {
		if k.session == sid && st.post == post && (whole || st.decided) {
			c.del(k)
		}
	}
}

// dropAnswer reports whether msg is the answer to a request the agent cancelled. The first
// look decides; consume also forgets the request (its answer has reached the wire). While the
// session has no cancelled request (nearly always) the answer is not even parsed.
func (c *CancelledAnswers) dropAnswer(sid string, msg []byte, consume bool) bool {
	c.mu.Lock()
	n := c.cancelled[sid]
	c.mu.Unlock()
	if n == 0 {
		return false
	}
	var id string
	for _, m := range messages(msg) {
		if m.Method == "" && len(m.ID) > 0 {
			id = canonID(m.ID)
		}
	}
	if id == "" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := reqKey{sid, id}
	st, ok := c.reqs[k]
	if !ok {
		return false
	}
	if !st.decided {
		st.decided, st.drop = true, st.cancelled
	}
	if consume {
		c.del(k)
	}
	return st.drop
}

// forgetSession drops every entry of a session that ended.
func (c *CancelledAnswers) forgetSession(sid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.reqs {
		if k.session == sid {
			delete(c.reqs, k)
		}
	}
	delete(c.cancelled, sid)
}

// answerFilter leaves the answers to cancelled requests off a session's event streams. The SDK
// writes each server-sent event with one Write ("event: message\nid: ...\ndata: JSON\n\n").
type answerFilter struct {
	http.ResponseWriter
	c   *CancelledAnswers
	sid string
}

func (f *answerFilter) Write(b []byte) (int, error) {
	if data, ok := eventData(b); ok && f.c.dropAnswer(f.sid, data, true) {
		return len(b), nil
	}
	return f.ResponseWriter.Write(b)
}

// eventData is the data of one server-sent "message" event.
func eventData(b []byte) ([]byte, bool) {
	if !bytes.HasPrefix(b, []byte("event: message\n")) || !bytes.HasSuffix(b, []byte("\n\n")) {
		return nil, false
	}
	_, data, ok := bytes.Cut(b, []byte("\ndata: "))
	if !ok {
		return nil, false
	}
	return data[:len(data)-2], true
}

// Unwrap lets http.ResponseController reach the connection's writer (the SDK flushes each event).
func (f *answerFilter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// Flush keeps server-sent event streams streaming through the filter.
func (f *answerFilter) Flush() {
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

// EventStore wraps the store streams are resumed from: a cancelled request's answer is stored
// empty (the SDK skips empty events when it replays; storing nothing would shift the event
// ids the SDK has already handed out).
func (c *CancelledAnswers) EventStore(next sdk.EventStore) sdk.EventStore {
	return cancelStore{next: next, c: c}
}

type cancelStore struct {
	next sdk.EventStore
	c    *CancelledAnswers
}

func (s cancelStore) Open(ctx context.Context, sessionID, streamID string) error {
	return s.next.Open(ctx, sessionID, streamID)
}

func (s cancelStore) Append(ctx context.Context, sessionID, streamID string, data []byte) error {
	if len(data) > 0 && s.c.dropAnswer(sessionID, data, false) {
		data = nil
	}
	return s.next.Append(ctx, sessionID, streamID, data)
}

func (s cancelStore) After(ctx context.Context, sessionID, streamID string, index int) iter.Seq2[[]byte, error] {
	return s.next.After(ctx, sessionID, streamID, index)
}

func (s cancelStore) SessionClosed(ctx context.Context, sessionID string) error {
	s.c.forgetSession(sessionID)
	return s.next.SessionClosed(ctx, sessionID)
}

var _ sdk.EventStore = cancelStore{}
