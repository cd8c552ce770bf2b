package llm

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// sessionPort records the request each Check gets.
type sessionPort struct {
	guard.Port
	got []guard.Request
}

func (p *sessionPort) Authenticate(context.Context, string, identity.Credentials) (*identity.Agent, error) {
	return &identity.Agent{ID: "a"}, nil
}

func (p *sessionPort) Check(_ context.Context, r guard.Request) *guard.Decision {
	p.got = append(p.got, r)
	return &guard.Decision{ID: "dec_1", Action: policy.Allow}
}

// The tool calls a model proposes are decided in the session the agent names with
// Portcullis-Session (its MCP session, when it uses both gateways).
func TestProposedCallsDecidedInTheNamedSession(t *testing.T) {
	port := &sessionPort{}
	c := Guarded(port, nil, Observers{})
	for _, session := range []string{"mcp-session-7", ""} {
		r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
		r.Header.Set("Authorization", "Bearer pcl_x")
		if session != "" {
			r.Header.Set(SessionHeader, session)
		}
		caller, err := c.Authenticate(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CheckToolCall(context.Background(), caller, ToolCall{Name: "send_email", Arguments: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if got := port.got[len(port.got)-1].Session; got != session {
			t.Errorf("decided in session %q, want %q", got, session)
		}
	}
}
