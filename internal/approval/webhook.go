package approval

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Webhook header names. The signature header is "t=<unix seconds>,v1=<hex HMAC-SHA256>" where
// the MAC is computed with the shared secret over "<t>.<body>" (the decimal timestamp, a full
// stop, then the exact request body bytes).
const (
	SignatureHeader = "X-Portcullis-Signature"
	DeliveryHeader  = "X-Portcullis-Delivery" // the same on every retry of one notification
	EventHeader     = "X-Portcullis-Event"
)

// Webhook errors.
var (
	// ErrWebhookSignature: the signature header is missing, malformed, or no signature in it
	// matches the body. ErrWebhookStale: the signature's timestamp is outside the tolerance.
	ErrWebhookSignature = errors.New("approval webhook: signature mismatch")
	ErrWebhookStale     = errors.New("approval webhook: timestamp outside tolerance")
	// ErrWebhookRejected: the receiver answered with a status that retrying cannot fix (4xx
	// other than 408 and 429).
	ErrWebhookRejected = errors.New("approval webhook: rejected by receiver")
	// ErrWebhookQueueFull: a notification was dropped because the delivery queue was full.
	ErrWebhookQueueFull = errors.New("approval webhook: queue full, notification dropped")
)

// MinWebhookSecret is the shortest secret accepted, in bytes (256 bits).
const MinWebhookSecret = 32

// DefaultWebhookTolerance is how far a signature's timestamp may be from the receiver's clock.
const DefaultWebhookTolerance = 5 * time.Minute

// WebhookConfig configures a Webhook. Zero values take the defaults named.
type WebhookConfig struct {
	URL    string // http or https endpoint, e.g. a Slack incoming webhook
	Secret []byte // HMAC key shared with the receiver, at least MinWebhookSecret bytes
	// ConsoleURL, if set, is where an approver opens a request: the request ID is appended
	// ("https://portcullis.example/approvals/" → ".../approvals/apr_…").
	ConsoleURL  string
	Client      *http.Client  // default: 10 s timeout, no redirects followed
	MaxAttempts int           // default 6
	BaseDelay   time.Duration // first retry after about this long; default 1 s
	MaxDelay    time.Duration // cap of one backoff; default 1 min
	QueueSize   int           // notifications waiting for delivery; default 256
	Concurrency int           // deliveries in flight; default 4
	// OnError hears about notifications that were dropped or finally failed (for logs and
	// metrics). It must not block.
	OnError func(id string, err error)
}

// Webhook announces new pending requests by POSTing signed JSON to an endpoint, asynchronously
// and with bounded retries. Failure to notify changes nothing about the request: it stays
// pending and visible through the API and CLI, and still expires on time.
type Webhook struct {
	cfg   WebhookConfig
	queue chan Request
	now   func() time.Time
}

var _ Announcer = (*Webhook)(nil)

// NewWebhook validates cfg and returns a webhook. Call Run to deliver.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("new approval webhook: url %q: want an absolute http(s) URL", cfg.URL)
	}
	if len(cfg.Secret) < MinWebhookSecret {
		return nil, fmt.Errorf("new approval webhook: secret of %d bytes; want at least %d", len(cfg.Secret), MinWebhookSecret)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			Timeout: 10 * time.Second,
			// A redirect would re-send the signed body somewhere nobody configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 6
	}
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = time.Second
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = time.Minute
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 256
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	cfg.Secret = append([]byte(nil), cfg.Secret...)
	return &Webhook{cfg: cfg, queue: make(chan Request, cfg.QueueSize), now: time.Now}, nil
}

// Announce queues r for delivery without blocking; when the queue is full the notification is
// dropped and reported to OnError.
func (w *Webhook) Announce(r Request) {
	select {
	case w.queue <- r:
	default:
		w.fail(r.ID, ErrWebhookQueueFull)
	}
}

// Run delivers queued notifications until ctx ends, then waits for deliveries in flight (which
// stop retrying when ctx ends), reports the notifications still queued to OnError as not
// delivered, and returns ctx's error.
func (w *Webhook) Run(ctx context.Context) error {
	sem := make(chan struct{}, w.cfg.Concurrency)
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		for {
			select {
			case r := <-w.queue:
				w.fail(r.ID, fmt.Errorf("deliver approval webhook %s: %w", r.ID, ctx.Err()))
			default:
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-w.queue:
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				w.fail(r.ID, fmt.Errorf("deliver approval webhook %s: %w", r.ID, ctx.Err()))
				return ctx.Err()
			}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := w.Deliver(ctx, r); err != nil {
					w.fail(r.ID, err)
				}
			})
		}
	}
}

func (w *Webhook) fail(id string, err error) {
	if w.cfg.OnError != nil {
		w.cfg.OnError(id, err)
	}
}

// Deliver sends the notification for r now, retrying transient failures (network errors, 408,
// 429, 5xx) with exponential backoff and jitter up to MaxAttempts. Each attempt is signed
// afresh; all carry the same delivery ID so receivers can de-duplicate.
func (w *Webhook) Deliver(ctx context.Context, r Request) error {
	body, err := WebhookPayload(r, w.cfg.ConsoleURL)
	if err != nil {
		return err
	}
	return w.Send(ctx, KindRequested, r.ID+"."+KindRequested, body)
}

// Send posts body as an event of the named kind (the event header) with the same signing,
// delivery ID and bounded retries as an approval notification: other notifications, such as
// alerts, reuse the endpoint and the receiver's verification.
func (w *Webhook) Send(ctx context.Context, event, delivery string, body []byte) error {
	var last error
	for attempt := 1; ; attempt++ {
		retryAfter, err := w.post(ctx, body, delivery, event)
		if err == nil {
			return nil
		}
		last = err
		if errors.Is(err, ErrWebhookRejected) || attempt >= w.cfg.MaxAttempts {
			return fmt.Errorf("deliver webhook %s after %d attempt(s): %w", delivery, attempt, last)
		}
		delay := max(w.backoff(attempt), min(retryAfter, w.cfg.MaxDelay))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("deliver webhook %s: %w (last error: %w)", delivery, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// backoff is the delay after failed attempt n (1-based): BaseDelay·2^(n-1) capped at MaxDelay,
// with "equal jitter" — uniformly random in [d/2, d] — so a fleet of gateways that failed
// together does not retry together, while every wait is at least half the nominal one.
func (w *Webhook) backoff(n int) time.Duration {
	d := min(w.cfg.BaseDelay, w.cfg.MaxDelay)
	for i := 1; i < n && d < w.cfg.MaxDelay; i++ {
		d = min(2*d, w.cfg.MaxDelay) // doubling below MaxDelay cannot overflow
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// post makes one attempt. It returns the receiver's Retry-After (0 if none) and an error
// wrapping ErrWebhookRejected for responses retrying cannot fix.
func (w *Webhook) post(ctx context.Context, body []byte, delivery, event string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrWebhookRejected, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "portcullis-webhook/1")
	req.Header.Set(SignatureHeader, SignWebhook(w.cfg.Secret, body, w.now()))
	req.Header.Set(DeliveryHeader, delivery)
	req.Header.Set(EventHeader, event)
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return 0, nil
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		var after time.Duration
		if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s > 0 {
			after = time.Duration(s) * time.Second
		}
		return after, fmt.Errorf("post: status %d", code)
	default:
		return 0, fmt.Errorf("%w: status %d", ErrWebhookRejected, code)
	}
}

// SignWebhook returns the signature header value for body at time now.
func SignWebhook(secret, body []byte, now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(webhookMAC(secret, ts, body))
}

func webhookMAC(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifyWebhook checks a notification's signature header against body with the shared secret:
// one of its v1 signatures must be the HMAC-SHA256 of "<t>.<body>", and t must be within
// tolerance of now (DefaultWebhookTolerance when tolerance <= 0), which bounds replays.
// Unknown keys in the header are ignored, so new schemes can be added beside v1.
// It returns nil, or an error wrapping ErrWebhookSignature or ErrWebhookStale.
func VerifyWebhook(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	if len(header) > 4096 {
		return fmt.Errorf("%w: header too long", ErrWebhookSignature)
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: malformed header element %q", ErrWebhookSignature, part)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: more than one timestamp", ErrWebhookSignature)
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return fmt.Errorf("%w: malformed v1 signature", ErrWebhookSignature)
			}
			sigs = append(sigs, sig)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return fmt.Errorf("%w: header needs t= and v1=", ErrWebhookSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || ts != strconv.FormatInt(sec, 10) {
		return fmt.Errorf("%w: malformed timestamp %q", ErrWebhookSignature, ts)
	}
	// Check the MAC before the clock, so a forged header learns nothing about our tolerance.
	want := webhookMAC(secret, ts, body)
	ok := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			ok = true
		}
	}
	if !ok {
		return ErrWebhookSignature
	}
	skew := now.Sub(time.Unix(sec, 0))
	if skew > tolerance || skew < -tolerance {
		return fmt.Errorf("%w: signed %v away from now", ErrWebhookStale, skew.Round(time.Second))
	}
	return nil
}

// webhookBody is the notification: Slack incoming webhooks read "text" and "attachments"
// (legacy attachments carry the structured fields); other receivers read "portcullis".
type webhookBody struct {
	Text        string            `json:"text"`
	Attachments []slackAttachment `json:"attachments"`
	Portcullis  WebhookEvent      `json:"portcullis"`
}

type slackAttachment struct {
	Fallback  string       `json:"fallback"`
	Color     string       `json:"color"`
	Title     string       `json:"title"`
	TitleLink string       `json:"title_link,omitempty"`
	Fields    []slackField `json:"fields"`
	Ts        int64        `json:"ts"`
}

type slackField struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

// WebhookEvent is the machine-readable part of a notification. It deliberately omits the
// parameters, even redacted: the endpoint is often a third-party chat service. Approvers open
// URL (or `portcullis approvals show ID`) to see them.
type WebhookEvent struct {
	Event             string    `json:"event"`
	ApprovalID        string    `json:"approval_id"`
	DecisionID        string    `json:"decision_id"`
	Agent             string    `json:"agent"`
	User              string    `json:"user,omitempty"`
	UserVerified      bool      `json:"user_verified"`
	Tool              string    `json:"tool"`
	Rule              string    `json:"rule"`
	PolicyVersion     string    `json:"policy_version"`
	ThreatLevel       string    `json:"threat_level"`
	Findings          []string  `json:"findings"`
	Signals           []string  `json:"signals"`
	RequiredApprovals int       `json:"required_approvals"`
	ParamsDigest      string    `json:"params_digest"`
	CreatedAt         time.Time `json:"created_at"`
	ExpiresAt         time.Time `json:"expires_at"`
	URL               string    `json:"url,omitempty"`
}

// WebhookPayload renders the notification body for r. consoleURL may be empty.
func WebhookPayload(r Request, consoleURL string) ([]byte, error) {
	ev := WebhookEvent{
		Event: KindRequested, ApprovalID: r.ID, DecisionID: r.DecisionID,
		Agent: r.Agent, User: r.User, UserVerified: r.UserVerified, Tool: r.Tool, Rule: r.Rule,
		PolicyVersion: r.PolicyVersion, ThreatLevel: r.ThreatLevel.String(),
		Findings: []string{}, Signals: []string{},
		RequiredApprovals: r.Required, ParamsDigest: r.ParamsDigest,
		CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
	}
	if consoleURL != "" {
		ev.URL = consoleURL + url.PathEscape(r.ID)
	}
	seen := map[string]bool{}
	for _, f := range r.Findings {
		if !seen[f.Kind] {
			seen[f.Kind] = true
			ev.Findings = append(ev.Findings, f.Kind)
		}
	}
	for _, s := range r.Signals {
		ev.Signals = append(ev.Signals, s.Name)
	}
	user := "none"
	if r.User != "" {
		user = slackCode(r.User) + " (asserted by the agent)"
		if r.UserVerified {
			user = slackCode(r.User) + " (verified)"
		}
	}
	text := fmt.Sprintf("Approval needed: agent %s wants to call %s (rule %s). %d approval(s) required; expires %s. ID %s",
		slackCode(r.Agent), slackCode(r.Tool), slackCode(r.Rule), r.Required,
		ev.ExpiresAt.Format(time.RFC3339), slackCode(r.ID))
	findings := "none"
	if len(ev.Findings) > 0 {
		findings = SlackEscape(strings.Join(ev.Findings, ", "))
	}
	signals := "none"
	if len(ev.Signals) > 0 {
		signals = SlackEscape(strings.Join(ev.Signals, ", "))
	}
	body := webhookBody{
		Text: text,
		Attachments: []slackAttachment{{
			Fallback:  text,
			Color:     threatColor(r),
			Title:     "Portcullis approval request " + r.ID,
			TitleLink: ev.URL,
			Fields: []slackField{
				{"Agent", slackCode(r.Agent), true},
				{"Invoking user", user, true},
				{"Tool", slackCode(r.Tool), true},
				{"Rule", slackCode(r.Rule), true},
				{"Threat level", ev.ThreatLevel, true},
				{"Approvals required", strconv.Itoa(r.Required), true},
				{"Findings", findings, false},
				{"Signals", signals, false},
				{"Policy version", slackCode(r.PolicyVersion), true},
				{"Expires", ev.ExpiresAt.Format(time.RFC3339), true},
			},
			Ts: r.CreatedAt.Unix(),
		}},
		Portcullis: ev,
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		return nil, fmt.Errorf("encode approval webhook: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func threatColor(r Request) string {
	switch {
	case r.ThreatLevel >= threat.High:
		return "danger"
	case r.ThreatLevel >= threat.Low:
		return "warning"
	}
	return "#439FE0"
}

// SlackEscape makes agent-controlled text inert in Slack's mrkdwn: '&', '<' and '>' are the
// control characters of links and mentions (an agent naming its tool "<https://evil|Approve>"
// must not become a link), and long values are cut.
func SlackEscape(s string) string {
	const maxLen = 200
	if len(s) > maxLen {
		cut := maxLen
		for cut > 0 && s[cut]&0xC0 == 0x80 { // don't split a UTF-8 sequence
			cut--
		}
		s = s[:cut] + "…"
	}
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackCode renders s as inline code; backticks inside would end the code span early.
func slackCode(s string) string {
	if s == "" {
		return "(none)"
	}
	return "`" + strings.ReplaceAll(SlackEscape(s), "`", "'") + "`"
}
