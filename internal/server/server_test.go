package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/jsonx"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// blockingDecider holds every Check until release is closed.
type blockingDecider struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingDecider) Admit(_ context.Context, req guard.Request) (*identity.Agent, *guard.Decision) {
	id, err := identity.APIKeyID(req.Credentials.APIKey)
	if err != nil {
		return nil, &guard.Decision{ID: "dec_test", Action: policy.Deny, Code: guard.CodeUnauthenticated}
	}
	return &identity.Agent{ID: id}, nil
}

func (b *blockingDecider) Check(ctx context.Context, req guard.Request) *guard.Decision {
	b.entered <- struct{}{}
	<-b.release
	return &guard.Decision{ID: "dec_test", Action: policy.Allow}
}

func (b *blockingDecider) CheckResult(context.Context, guard.Outcome) *guard.ResultDecision {
	return &guard.ResultDecision{Action: guard.ResultPass}
}

func TestPerAgentConcurrencyLimit(t *testing.T) {
	d := &blockingDecider{entered: make(chan struct{}, 4), release: make(chan struct{})}
	s := New(Options{Decider: d, Limits: Limits{MaxBodyBytes: 1 << 20, MaxDepth: 64, MaxParams: 100, MaxConcurrencyPerAgent: 1}})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	post := func(key string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/decide", strings.NewReader(`{"tool":"t","params":{}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	keyA, _, _ := identity.NewAPIKey("agent-a", "", time.Now(), 0)
	keyB, _, _ := identity.NewAPIKey("agent-b", "", time.Now(), 0)
	entered := func() {
		t.Helper()
		select {
		case <-d.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the call never reached the decider")
		}
	}
	first := make(chan int)
	go func() { first <- post(keyA) }()
	entered() // agent A's first call holds its only slot
	if got := post(keyA); got != http.StatusTooManyRequests {
		t.Errorf("second concurrent call of the same agent: %d, want 429", got)
	}
	second := make(chan int)
	go func() { second <- post(keyB) }() // another agent is not affected
	entered()
	close(d.release)
	if got := <-first; got != http.StatusOK {
		t.Errorf("first call: %d", got)
	}
	if got := <-second; got != http.StatusOK {
		t.Errorf("other agent: %d", got)
	}
	if got := post(keyA); got != http.StatusOK {
		t.Errorf("after the slot was released: %d", got)
	}
}

func TestMaxDepthAndCount(t *testing.T) {
	tests := []struct {
		in           string
		depth, count int
	}{
		{`{}`, 1, 1},
		{`{"a":[1,2,{"b":"[{]}"}]}`, 3, 6},
		{`"just a string with { and ["`, 0, 1},
		{`{"a":"\"{"}`, 1, 2},
	}
	for _, tc := range tests {
		if d := jsonx.Depth([]byte(tc.in)); d != tc.depth {
			t.Errorf("Depth(%s) = %d, want %d", tc.in, d, tc.depth)
		}
		if c := jsonx.CountValues([]byte(tc.in)); c != tc.count {
			t.Errorf("CountValues(%s) = %d, want %d", tc.in, c, tc.count)
		}
	}
}
