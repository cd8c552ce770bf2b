package mcp

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// allowPort is a guard.Port that allows everything and records nothing: for tests of the
// gateway's own plumbing.
type allowPort struct{}

var _ guard.Port = allowPort{}

func (allowPort) Authenticate(context.Context, string, identity.Credentials) (*identity.Agent, error) {
	return &identity.Agent{ID: "agent-1"}, nil
}

func (allowPort) VisibleTools(_ context.Context, l guard.Listing) ([]string, error) {
	return l.Tools, nil
}

func (allowPort) Check(_ context.Context, req guard.Request) *guard.Decision {
	return &guard.Decision{ID: guard.NewDecisionID(), Tool: req.Tool, Action: policy.Allow, Agent: &identity.Agent{ID: "agent-1"}, Params: req.Params}
}

func (allowPort) CheckResult(_ context.Context, o guard.Outcome) *guard.ResultDecision {
	return &guard.ResultDecision{Action: guard.ResultPass, Result: o.Result}
}

func (allowPort) CheckNotice(_ context.Context, n guard.Notice) *guard.ResultDecision {
	return &guard.ResultDecision{Action: guard.ResultPass, Result: n.Data}
}

func (allowPort) CheckContent(context.Context, guard.Content) *guard.ContentDecision {
	return &guard.ContentDecision{Action: guard.ResultPass}
}

func (allowPort) CheckDefinition(context.Context, guard.Definition) *guard.ResultDecision {
	return &guard.ResultDecision{Action: guard.ResultPass}
}

func (allowPort) HoldDefinition(context.Context, guard.DefinitionHold) (guard.HeldDefinition, error) {
	return guard.HeldDefinition{}, errors.New("allowPort holds nothing")
}

func (allowPort) RecordEvent(context.Context, guard.Event) error { return nil }

// gatedTransport's Connect waits for gate: a child that takes its time to start.
type gatedTransport struct {
	gate <-chan struct{}
	next sdk.Transport
}

func (t gatedTransport) Connect(ctx context.Context) (sdk.Connection, error) {
	select {
	case <-t.gate:
		return t.next.Connect(ctx)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestReconnectBlocksNoOne: while one upstream's reconnection hangs (a restarted child that has
// not answered its handshake), a list and a call to another upstream go on at once, instead of
// queueing behind the upstream's lock for up to the call timeout; once the child answers, the
// call that triggered the reconnection runs on the new session.
func TestReconnectBlocksNoOne(t *testing.T) {
	ctx := context.Background()
	newUpstream := func() *sdk.Server {
		s := sdk.NewServer(&sdk.Implementation{Name: "up", Version: "1"}, nil)
		sdk.AddTool(s, &sdk.Tool{Name: "echo"}, func(_ context.Context, _ *sdk.CallToolRequest, in struct {
			Text string `json:"text"`
		}) (*sdk.CallToolResult, any, error) {
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: in.Text}}}, nil, nil
		})
		return s
	}
	var mu sync.Mutex
	var sessions []*sdk.ServerSession
	connectTo := func(s *sdk.Server) sdk.Transport {
		st, ct := sdk.NewInMemoryTransports()
		ss, err := s.Connect(ctx, st, nil)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		sessions = append(sessions, ss)
		mu.Unlock()
		return ct
	}
	slow, fast := newUpstream(), newUpstream()
	gate := make(chan struct{})
	var slowConnects atomic.Int32
	var slowSession *sdk.ServerSession
	slowTransport := func() sdk.Transport {
		if slowConnects.Add(1) == 1 {
			tr := connectTo(slow)
			mu.Lock()
			slowSession = sessions[len(sessions)-1]
			mu.Unlock()
			return tr
		}
		return gatedTransport{gate: gate, next: connectTo(slow)}
	}
	gw, err := New(ctx, Options{Guard: allowPort{}, CallTimeout: 30 * time.Second}, []Upstream{
		{Name: "slow", NewTransport: slowTransport},
		{Name: "fast", NewTransport: func() sdk.Transport { return connectTo(fast) }},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the agent's session and the gateway end
		mu.Lock()
		defer mu.Unlock()
		for _, ss := range sessions {
			_ = ss.Close()
		}
	})
	cs := connectAgent(t, gw)
	call := func(ctx context.Context, name string) (string, error) {
		r, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: map[string]any{"text": name}})
		if err != nil {
			return "", err
		}
		return resultText(r), nil
	}
	if got, err := call(ctx, "slow__echo"); err != nil || got != "slow__echo" {
		t.Fatalf("before: %q %v", got, err)
	}

	// The slow upstream's child dies; wait until the gateway saw it and the backoff passed.
	_ = slowSession.Close()
	time.Sleep(restartBackoff + 100*time.Millisecond)
	triggered := make(chan string, 1)
	go func() {
		got, err := call(ctx, "slow__echo") // reconnects, and hangs on the gate
		if err != nil {
			got = err.Error()
		}
		triggered <- got
	}()
	for deadline := time.Now().Add(5 * time.Second); slowConnects.Load() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the call did not start a reconnection")
		}
	}

	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if got, err := call(qctx, "fast__echo"); err != nil || got != "fast__echo" {
		t.Errorf("a call to another upstream during the reconnection: %q %v", got, err)
	}
	res, err := cs.ListTools(qctx, nil)
	if err != nil {
		t.Fatalf("tools/list during the reconnection: %v", err)
	}
	if len(res.Tools) != 1 || res.Tools[0].Name != "fast__echo" {
		t.Errorf("tools/list during the reconnection: %d tools, want fast__echo alone", len(res.Tools))
	}
	select {
	case got := <-triggered:
		t.Fatalf("the triggering call returned before the upstream answered: %q", got)
	default:
	}

	close(gate)
	select {
	case got := <-triggered:
		if got != "slow__echo" {
			t.Errorf("the triggering call after the reconnection: %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the triggering call did not finish after the upstream answered")
	}
}
