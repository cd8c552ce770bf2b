package approval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func webhookRequest() Request {
	created := time.Date(2026, 3, 2, 22, 15, 0, 0, time.UTC)
	return Request{
		ID: "apr_test", DecisionID: "dec_1", Agent: "payments-agent", User: "dave@example.com",
		UserVerified: true, Tool: "transfer_funds", Rule: "large_transfers", PolicyVersion: "v7",
		ThreatLevel: threat.High, ParamsDigest: "sha256:" + strings.Repeat("ab", 32), Required: 2,
		Findings: []inspect.Finding{
			{Kind: "pii.iban", Severity: threat.Low}, {Kind: "sql_injection", Severity: threat.High},
			{Kind: "pii.iban", Severity: threat.Low},
		},
		Signals:   []Signal{{Name: "unusual_hour", Score: 1}},
		CreatedAt: created, ExpiresAt: created.Add(15 * time.Minute), State: Pending,
	}
}

// TestWebhookReceiverVerifies runs a real HTTP receiver that verifies every delivery's HMAC
// the way docs/approvals.md tells integrators to, end to end from Engine.Request.
func TestWebhookReceiverVerifies(t *testing.T) {
	type delivery struct {
		header, id, event string
		body              []byte
		verifyErr         error
	}
	got := make(chan delivery, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d := delivery{
			header: r.Header.Get(SignatureHeader), id: r.Header.Get(DeliveryHeader),
			event: r.Header.Get(EventHeader), body: body,
		}
		d.verifyErr = VerifyWebhook(testSecret, d.header, body, time.Now(), 0)
		if d.verifyErr != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
		}
		got <- d
	}))
	defer srv.Close()

	wh, err := NewWebhook(WebhookConfig{URL: srv.URL, Secret: testSecret, ConsoleURL: "https://portcullis.example/approvals/"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- wh.Run(ctx) }()

	e, _, _ := newTestEngine(t, WithAnnouncer(wh))
	in := transferInput()
	in.Tool = "<https://evil.example|Approve now>" // agent-controlled text must stay inert
	r := mustRequest(t, e, in)

	d := <-got
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
	if d.verifyErr != nil {
		t.Fatalf("receiver could not verify: %v (header %q)", d.verifyErr, d.header)
	}
	if d.id != r.ID+".approval_requested" || d.event != "approval_requested" {
		t.Errorf("delivery %q event %q", d.id, d.event)
	}
	var body struct {
		Text        string `json:"text"`
		Attachments []struct {
			Title     string `json:"title"`
			TitleLink string `json:"title_link"`
			Fields    []struct {
				Title, Value string
			} `json:"fields"`
		} `json:"attachments"`
		Portcullis WebhookEvent `json:"portcullis"`
	}
	if err := json.Unmarshal(d.body, &body); err != nil {
		t.Fatalf("payload: %v", err)
	}
	if strings.Contains(body.Text, "<https://evil") || !strings.Contains(body.Text, "&lt;https://evil.example|Approve now&gt;") {
		t.Errorf("agent-controlled text not escaped: %s", body.Text)
	}
	if body.Portcullis.ApprovalID != r.ID || body.Portcullis.Tool != in.Tool ||
		body.Portcullis.URL != "https://portcullis.example/approvals/"+r.ID ||
		body.Attachments[0].TitleLink != body.Portcullis.URL {
		t.Errorf("portcullis section: %+v", body.Portcullis)
	}
	if bytes.Contains(d.body, []byte("acct-1")) || bytes.Contains(d.body, []byte("REDACTED")) {
		t.Errorf("parameters leaked into the webhook: %s", d.body)
	}
	// Tampering with one byte of what was received fails verification.
	tampered := bytes.Replace(d.body, []byte(`"required_approvals":1`), []byte(`"required_approvals":0`), 1)
	if bytes.Equal(tampered, d.body) {
		t.Fatal("tamper target not found")
	}
	if err := VerifyWebhook(testSecret, d.header, tampered, time.Now(), 0); !errors.Is(err, ErrWebhookSignature) {
		t.Errorf("tampered body verified: %v", err)
	}
}

func TestWebhookPayload(t *testing.T) {
	body, err := WebhookPayload(webhookRequest(), "")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Text        string            `json:"text"`
		Attachments []slackAttachment `json:"attachments"`
		Portcullis  WebhookEvent      `json:"portcullis"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	wantText := "Approval needed: agent `payments-agent` wants to call `transfer_funds` (rule `large_transfers`). " +
		"2 approval(s) required; expires 2026-03-02T22:30:00Z. ID `apr_test`"
	if diff := cmp.Diff(wantText, got.Text); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}
	wantEvent := WebhookEvent{
		Event: "approval_requested", ApprovalID: "apr_test", DecisionID: "dec_1",
		Agent: "payments-agent", User: "dave@example.com", UserVerified: true, Tool: "transfer_funds",
		Rule: "large_transfers", PolicyVersion: "v7", ThreatLevel: "high",
		Findings: []string{"pii.iban", "sql_injection"}, Signals: []string{"unusual_hour"},
		RequiredApprovals: 2, ParamsDigest: "sha256:" + strings.Repeat("ab", 32),
		CreatedAt: time.Date(2026, 3, 2, 22, 15, 0, 0, time.UTC),
		ExpiresAt: time.Date(2026, 3, 2, 22, 30, 0, 0, time.UTC),
	}
	if diff := cmp.Diff(wantEvent, got.Portcullis); diff != "" {
		t.Errorf("portcullis (-want +got):\n%s", diff)
	}
	fields := map[string]string{}
	for _, f := range got.Attachments[0].Fields {
		fields[f.Title] = f.Value
	}
	for title, want := range map[string]string{
		"Invoking user": "`dave@example.com` (verified)", "Findings": "pii.iban, sql_injection",
		"Threat level": "high", "Approvals required": "2",
	} {
		if fields[title] != want {
			t.Errorf("field %q = %q, want %q", title, fields[title], want)
		}
	}
	if got.Attachments[0].Color != "danger" {
		t.Errorf("color %q", got.Attachments[0].Color)
	}
}

func TestSlackEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a<b>&c", "a&lt;b&gt;&amp;c"},
		{strings.Repeat("é", 150), strings.Repeat("é", 100) + "…"},
	}
	for _, tt := range tests {
		if got := SlackEscape(tt.in); got != tt.want {
			t.Errorf("SlackEscape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := slackCode("a`b"); got != "`a'b`" {
		t.Errorf("slackCode = %q", got)
	}
}

// roundTrips is an in-memory http.RoundTripper answering with a scripted list of statuses
// (the last repeats), recording when each attempt came and its headers.
type roundTrips struct {
	mu       sync.Mutex
	statuses []int
	header   http.Header // extra response headers
	at       []time.Time
	sigs     []string
	ids      []string
}

func (rt *roundTrips) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	body, _ := io.ReadAll(req.Body)
	if err := VerifyWebhook(testSecret, req.Header.Get(SignatureHeader), body, time.Now(), 0); err != nil {
		return nil, fmt.Errorf("test receiver: %w", err)
	}
	rt.at = append(rt.at, time.Now())
	rt.sigs = append(rt.sigs, req.Header.Get(SignatureHeader))
	rt.ids = append(rt.ids, req.Header.Get(DeliveryHeader))
	status := rt.statuses[min(len(rt.at)-1, len(rt.statuses)-1)]
	if status == 0 {
		return nil, errors.New("connection refused")
	}
	h := http.Header{}
	for k, v := range rt.header {
		h[k] = v
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

func (rt *roundTrips) attempts() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return len(rt.at)
}

func newScriptedWebhook(t *testing.T, rt *roundTrips, onErr func(string, error)) *Webhook {
	t.Helper()
	wh, err := NewWebhook(WebhookConfig{
		URL: "https://hooks.example/approvals", Secret: testSecret,
		Client:      &http.Client{Transport: rt},
		MaxAttempts: 5, BaseDelay: time.Second, MaxDelay: 4 * time.Second, OnError: onErr,
	})
	if err != nil {
		t.Fatal(err)
	}
	return wh
}

func TestWebhookRetryBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := &roundTrips{statuses: []int{503, 0, 500, 200}} // 0: network error
		wh := newScriptedWebhook(t, rt, nil)
		if err := wh.Deliver(context.Background(), webhookRequest()); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		if rt.attempts() != 4 {
			t.Fatalf("%d attempts, want 4", rt.attempts())
		}
		// Nominal delays 1s, 2s, 4s; each jittered into [d/2, d].
		for i, nominal := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
			gap := rt.at[i+1].Sub(rt.at[i])
			if gap < nominal/2 || gap > nominal {
				t.Errorf("delay before attempt %d = %v, want within [%v, %v]", i+2, gap, nominal/2, nominal)
			}
		}
		for i := range rt.ids {
			if rt.ids[i] != "apr_test.approval_requested" {
				t.Errorf("attempt %d delivery id %q", i+1, rt.ids[i])
			}
		}
		if rt.sigs[0] == rt.sigs[3] {
			t.Error("retries reuse the first signature instead of signing afresh")
		}
	})
}

func TestWebhookBackoffCapped(t *testing.T) {
	wh := newScriptedWebhook(t, &roundTrips{statuses: []int{200}}, nil)
	for n := 1; n <= 70; n++ {
		nominal := 4 * time.Second // base 1s doubles to the 4s cap at the third attempt
		if n < 3 {
			nominal = time.Second << (n - 1)
		}
		for range 20 {
			if d := wh.backoff(n); d < nominal/2 || d > nominal {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, nominal/2, nominal)
			}
		}
	}
}

func TestWebhookGivesUpAndNothingIsApproved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := &roundTrips{statuses: []int{500}}
		var mu sync.Mutex
		var failed []string
		wh := newScriptedWebhook(t, rt, func(id string, err error) {
			mu.Lock()
			failed = append(failed, id)
			mu.Unlock()
		})
		e, _, _ := newTestEngine(t, WithAnnouncer(wh))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- wh.Run(ctx) }()

		r := mustRequest(t, e, transferInput())
		time.Sleep(time.Minute)
		synctest.Wait()
		if rt.attempts() != 5 {
			t.Errorf("%d attempts, want MaxAttempts = 5", rt.attempts())
		}
		mu.Lock()
		if diff := cmp.Diff([]string{r.ID}, failed); diff != "" {
			t.Errorf("OnError ids (-want +got):\n%s", diff)
		}
		mu.Unlock()
		if got, _ := e.Get(context.Background(), r.ID); got.State != Pending {
			t.Errorf("failed notification changed the request to %s", got.State)
		}
		cancel()
		<-done
	})
}

func TestWebhookPermanentRejection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := &roundTrips{statuses: []int{404}}
		wh := newScriptedWebhook(t, rt, nil)
		err := wh.Deliver(context.Background(), webhookRequest())
		if !errors.Is(err, ErrWebhookRejected) || rt.attempts() != 1 {
			t.Fatalf("Deliver: err %v after %d attempts; want ErrWebhookRejected after 1", err, rt.attempts())
		}
	})
}

func TestWebhookRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := &roundTrips{statuses: []int{429, 200}, header: http.Header{"Retry-After": {"3"}}}
		wh := newScriptedWebhook(t, rt, nil)
		if err := wh.Deliver(context.Background(), webhookRequest()); err != nil {
			t.Fatal(err)
		}
		if gap := rt.at[1].Sub(rt.at[0]); gap < 3*time.Second {
			t.Errorf("retried after %v, before the receiver's Retry-After of 3s", gap)
		}
	})
}

func TestWebhookStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := &roundTrips{statuses: []int{503}}
		wh := newScriptedWebhook(t, rt, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- wh.Deliver(ctx, webhookRequest()) }()
		synctest.Wait() // first attempt made, now backing off
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Deliver after cancel: %v", err)
		}
		if rt.attempts() != 1 {
			t.Errorf("%d attempts after cancel, want 1", rt.attempts())
		}
	})
}

func TestWebhookQueueFullDrops(t *testing.T) {
	var dropped []error
	wh, err := NewWebhook(WebhookConfig{
		URL: "https://hooks.example/x", Secret: testSecret, QueueSize: 1,
		OnError: func(_ string, err error) { dropped = append(dropped, err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	wh.Announce(webhookRequest()) // queued; nobody runs the queue
	wh.Announce(webhookRequest()) // must not block
	if len(dropped) != 1 || !errors.Is(dropped[0], ErrWebhookQueueFull) {
		t.Fatalf("dropped = %v, want one ErrWebhookQueueFull", dropped)
	}
}

func TestWebhookShutdownReportsUndelivered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := &roundTrips{statuses: []int{503}}
		var mu sync.Mutex
		failed := map[string]error{}
		wh, err := NewWebhook(WebhookConfig{
			URL: "https://hooks.example/x", Secret: testSecret, Client: &http.Client{Transport: rt},
			Concurrency: 1, OnError: func(id string, err error) {
				mu.Lock()
				failed[id] = err
				mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"apr_a", "apr_b", "apr_c"} {
			r := webhookRequest()
			r.ID = id
			wh.Announce(r)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- wh.Run(ctx) }()
		synctest.Wait() // apr_a is backing off; the others wait for the one delivery slot
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if len(failed) != 3 {
			t.Fatalf("reported %d undelivered notifications, want 3: %v", len(failed), failed)
		}
		for id, err := range failed {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v, want context.Canceled", id, err)
			}
		}
	})
}

func TestNewWebhookValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  WebhookConfig
	}{
		{"no url", WebhookConfig{Secret: testSecret}},
		{"relative url", WebhookConfig{URL: "/hooks", Secret: testSecret}},
		{"other scheme", WebhookConfig{URL: "ftp://x/y", Secret: testSecret}},
		{"short secret", WebhookConfig{URL: "https://x/y", Secret: []byte("short")}},
	}
	for _, tt := range tests {
		if _, err := NewWebhook(tt.cfg); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

func TestVerifyWebhook(t *testing.T) {
	body := []byte(`{"text":"hi"}`)
	now := time.Unix(1_800_000_000, 0)
	good := SignWebhook(testSecret, body, now)
	otherSecret := SignWebhook([]byte("another secret of thirty-two b.."), body, now)
	_, goodSig, _ := strings.Cut(good, ",")
	_, otherSig, _ := strings.Cut(otherSecret, ",")
	tests := []struct {
		name   string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", good, body, now, nil},
		{"valid with spaces and unknown scheme", "t=1800000000, v0=zz, " + goodSig, body, now, nil},
		{"rotation: second signature matches", "t=1800000000," + otherSig + "," + goodSig, body, now, nil},
		{"body changed", good, []byte(`{"text":"hi!"}`), now, ErrWebhookSignature},
		{"other secret", otherSecret, body, now, ErrWebhookSignature},
		{"timestamp changed", "t=1800000001," + goodSig, body, now, ErrWebhookSignature},
		{"too old", good, body, now.Add(DefaultWebhookTolerance + time.Second), ErrWebhookStale},
		{"from the future", good, body, now.Add(-DefaultWebhookTolerance - time.Second), ErrWebhookStale},
		{"edge of tolerance", good, body, now.Add(DefaultWebhookTolerance), nil},
		{"empty", "", body, now, ErrWebhookSignature},
		{"no timestamp", goodSig, body, now, ErrWebhookSignature},
		{"no signature", "t=1800000000", body, now, ErrWebhookSignature},
		{"two timestamps", "t=1800000000,t=1800000000," + goodSig, body, now, ErrWebhookSignature},
		{"timestamp with sign", "t=+1800000000," + goodSig, body, now, ErrWebhookSignature},
		{"bad hex", "t=1800000000,v1=zz", body, now, ErrWebhookSignature},
		{"short signature", "t=1800000000,v1=abcd", body, now, ErrWebhookSignature},
		{"element without =", "t=1800000000,garbage," + goodSig, body, now, ErrWebhookSignature},
		{"huge header", "t=1800000000," + strings.Repeat("x=y,", 2000) + goodSig, body, now, ErrWebhookSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyWebhook(testSecret, tt.header, tt.body, tt.now, 0)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("VerifyWebhook(%q) = %v, want %v", tt.header, err, tt.want)
			}
		})
	}
}

func FuzzVerifyWebhook(f *testing.F) {
	body := []byte(`{"text":"hi"}`)
	now := time.Unix(1_800_000_000, 0)
	f.Add(SignWebhook(testSecret, body, now), body)
	f.Add("t=1,v1=00", []byte{})
	f.Add("t=1800000000,v1=", []byte("x"))
	f.Add(",,,=,t=", []byte(nil))
	f.Fuzz(func(t *testing.T, header string, b []byte) {
		err := VerifyWebhook(testSecret, header, b, now, time.Hour)
		if err == nil {
			// Accepting means the header holds the true MAC of this body at some timestamp.
			var ts string
			for part := range strings.SplitSeq(header, ",") {
				if k, v, _ := strings.Cut(strings.TrimSpace(part), "="); k == "t" {
					ts = v
				}
			}
			if !strings.Contains(strings.ToLower(header), fmt.Sprintf("%x", webhookMAC(testSecret, ts, b))) {
				t.Fatalf("accepted header %q for body %q", header, b)
			}
		} else if !errors.Is(err, ErrWebhookSignature) && !errors.Is(err, ErrWebhookStale) {
			t.Fatalf("untyped error %v", err)
		}
	})
}
