package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/portcullis-ai/portcullis/sdk"
	"github.com/portcullis-ai/portcullis/sdk/httpsig"
)

type batchAnswer struct {
	Status  int
	Results []struct {
		Status     int    `json:"status"`
		Decision   string `json:"decision"`
		DecisionID string `json:"decision_id"`
		ApprovalID string `json:"approval_id"`
		Error      *struct {
			Code string `json:"code"`
		} `json:"error"`
	} `json:"results"`
	Error *struct {
		Code string `json:"code"`
	} `json:"error"`
}

func doBatch(t *testing.T, req *http.Request) batchAnswer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := batchAnswer{Status: resp.StatusCode}
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("%d %s: %v", resp.StatusCode, b, err)
	}
	return a
}

// A signed batch is authenticated once and each call decided, recorded and answered on its own:
// a malformed call (a duplicate key in its params, no tool) is refused alone, the others are
// decided; the same signed batch sent again is a replay, refused whole.
func TestDecideBatch(t *testing.T) {
	r := newRig(t, Limits{MaxConcurrencyPerAgent: 64})
	body := `{"calls":[
		{"tool":"fetch_customer_names","params":{"limit":5}},
		{"tool":"delete_file","params":{"path":"/x"}},
		{"tool":"fetch_customer_names","params":{"limit":5,"limit":6}},
		{"params":{}},
		{"tool":"wire_money","params":{"amount":10}},
		{"tool":"send_text","params":{"to":"a"},"wait_seconds":5}
	]}`
	a := doBatch(t, r.signed(t, "/v1/decide/batch", body))
	if a.Status != http.StatusOK || len(a.Results) != 6 {
		t.Fatalf("batch: %+v", a)
	}
	want := []struct {
		status   int
		decision string
		code     string
	}{
		{200, "ALLOW", ""}, {200, "DENY", ""}, {400, "DENY", "duplicate_key"}, {400, "DENY", "bad_request"},
		{200, "CONSTRAIN", ""}, {400, "DENY", "bad_request"},
	}
	ids := map[string]bool{}
	for i, w := range want {
		got := a.Results[i]
		code := ""
		if got.Error != nil {
			code = got.Error.Code
		}
		if got.Status != w.status || got.Decision != w.decision || code != w.code {
			t.Errorf("call %d: %d %s %q, want %d %s %q", i, got.Status, got.Decision, code, w.status, w.decision, w.code)
		}
		if got.DecisionID != "" {
			ids[got.DecisionID] = true
		}
	}
	if len(ids) != 3 {
		t.Errorf("decision IDs: %v, want 3 distinct", ids)
	}
	recs := r.records(t)
	recorded := map[string]string{}
	for _, rec := range recs {
		recorded[rec.DecisionID] = rec.Tool
	}
	for id := range ids {
		if recorded[id] == "" {
			t.Errorf("decision %s answered but not recorded", id)
		}
	}
	if a.Results[4].ApprovalID == "" {
		t.Error("held call without its approval ID")
	}
}

// A replayed signed batch is refused whole, before any call is decided.
func TestDecideBatchReplayRefused(t *testing.T) {
	r := newRig(t, Limits{MaxConcurrencyPerAgent: 64})
	body := `{"calls":[{"tool":"fetch_customer_names","params":{"limit":5}},{"tool":"send_text","params":{"to":"a"}}]}`
	req := r.signed(t, "/v1/decide/batch", body)
	dup := req.Clone(req.Context())
	dup.Body = io.NopCloser(strings.NewReader(body))
	if a := doBatch(t, req); a.Status != 200 || len(a.Results) != 2 || a.Results[0].Decision != "ALLOW" {
		t.Fatalf("first: %+v", a)
	}
	before := len(r.records(t))
	a := doBatch(t, dup)
	if a.Status != http.StatusUnauthorized || a.Error == nil || a.Error.Code != "signature_replayed" || len(a.Results) != 0 {
		t.Errorf("replayed batch: %+v", a)
	}
	if got := len(r.records(t)) - before; got != 1 {
		t.Errorf("replayed batch left %d records, want 1 (the refusal)", got)
	}
}

// The envelope is read strictly and bounded: a repeated "calls", an unknown member, no calls,
// too many calls, or no credential refuse the whole batch.
func TestDecideBatchEnvelope(t *testing.T) {
	r := newRig(t, Limits{MaxConcurrencyPerAgent: 64})
	call := `{"tool":"fetch_customer_names","params":{"limit":5}}`
	many := strings.TrimSuffix(strings.Repeat(call+",", MaxBatchCalls+1), ",")
	for _, c := range []struct {
		name, key, body string
		status          int
		code            string
	}{
		{"repeated calls", r.victimKey, `{"calls":[` + call + `],"calls":[]}`, 400, "duplicate_key"},
		{"case-variant calls", r.victimKey, `{"calls":[` + call + `],"Calls":[]}`, 400, "duplicate_key"},
		{"unknown member", r.victimKey, `{"calls":[` + call + `],"wait_seconds":3}`, 400, "bad_request"},
		{"no calls", r.victimKey, `{"calls":[]}`, 400, "bad_request"},
		{"too many", r.victimKey, `{"calls":[` + many + `]}`, 413, "too_many_calls"},
		{"not JSON", r.victimKey, `{"calls":[` + call, 400, "bad_request"},
		{"no credential", "", `{"calls":[` + call + `]}`, 401, "credential_missing"},
		{"agent mismatch", r.victimKey, `{"agent_id":"other","calls":[` + call + `]}`, 0, ""},
	} {
		req, err := http.NewRequest(http.MethodPost, r.srv.URL+"/v1/decide/batch", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		a := doBatch(t, req)
		if c.status == 0 { // the agent claimed is not the one authenticated: refused, whatever the code
			if a.Status < 400 || len(a.Results) != 0 {
				t.Errorf("%s: %+v", c.name, a)
			}
			continue
		}
		code := ""
		if a.Error != nil {
			code = a.Error.Code
		}
		if a.Status != c.status || code != c.code || len(a.Results) != 0 {
			t.Errorf("%s: %d %q (%d results), want %d %q", c.name, a.Status, code, len(a.Results), c.status, c.code)
		}
	}
	// A batch of exactly the bound is decided.
	exact := strings.TrimSuffix(strings.Repeat(call+",", MaxBatchCalls), ",")
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/v1/decide/batch", strings.NewReader(`{"calls":[`+exact+`]}`))
	req.Header.Set("Authorization", "Bearer "+r.victimKey)
	if a := doBatch(t, req); a.Status != 200 || len(a.Results) != MaxBatchCalls {
		t.Errorf("batch at the bound: %d, %d results", a.Status, len(a.Results))
	}
}

// The SDK's DecideBatch over HTTP/2 without TLS on a loopback listener (the transport speaks
// only h2c: an HTTP/1 answer would fail the request), signed once for the whole batch.
func TestSDKDecideBatchOverH2C(t *testing.T) {
	r := newRig(t, Limits{MaxConcurrencyPerAgent: 64})
	// The rig's server speaks HTTP/1 only; serve the same handler as the gateway does.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: r.server.Handler(), Protocols: Protocols(ln.Addr())}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	var proto atomic.Value
	hc := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := tr.RoundTrip(req)
		if err == nil {
			proto.Store(resp.Proto)
		}
		return resp, err
	})}
	c := sdk.New("http://"+ln.Addr().String(), sdk.WithHTTPClient(hc),
		sdk.WithSigner(&httpsig.Signer{KeyID: "victim-sig", Key: r.signKey}))
	res, err := c.DecideBatch(context.Background(), []sdk.DecideRequest{
		{Tool: "fetch_customer_names", Params: map[string]any{"limit": 5}},
		{Tool: "delete_file", Params: map[string]any{"path": "/x"}},
		{Tool: "wire_money", Params: map[string]any{"amount": 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := proto.Load().(string); p != "HTTP/2.0" {
		t.Errorf("protocol %q, want HTTP/2.0", p)
	}
	if len(res) != 3 || res[0].Decision == nil || !res[0].Decision.Allowed() || res[1].Decision == nil ||
		res[1].Decision.Decision != sdk.Deny || res[2].Decision == nil || !res[2].Decision.Pending() {
		t.Errorf("results: %+v", res)
	}
	if _, err := c.DecideBatch(context.Background(), []sdk.DecideRequest{{Tool: "x", ApprovalID: "a", WaitSeconds: 3}}); err == nil {
		t.Error("wait_seconds accepted in a batch")
	}
	// On a non-loopback address h2c is off.
	if p := Protocols(&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1)}); p.UnencryptedHTTP2() || !p.HTTP1() || !p.HTTP2() {
		t.Errorf("protocols on a routable address: %v", p)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
