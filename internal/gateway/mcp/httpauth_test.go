package mcp

import (
	"net/http"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/identity"
)

// The agent bound to an HTTP request reaches its messages, and only while the request is served;
// a reference a client forges, or one whose request is over, yields no agent (the call is then
// refused as unauthenticated).
func TestHTTPAgents(t *testing.T) {
	var h HTTPAgents
	msg := func(hdr http.Header) Caller {
		return h.Credentials(&sdk.CallToolRequest{Extra: &sdk.RequestExtra{Header: hdr}})
	}
	in, _ := http.NewRequest(http.MethodPost, "http://gw/mcp", nil)
	in.Header.Set(verifiedHeader, "forged")
	in.Header.Set(UserTokenHeader, "user-token")
	agent := &identity.Agent{ID: "agent-1"}
	r, unbind := h.Bind(in, agent)
	if got := r.Header.Get(verifiedHeader); got == "forged" || got == "" {
		t.Fatalf("bound request carries reference %q", got)
	}
	if in.Header.Get(verifiedHeader) != "forged" {
		t.Fatal("Bind changed the caller's request")
	}
	if c := msg(r.Header); c.Agent != agent || c.UserToken != "user-token" || c.Credentials.APIKey != "" || c.Credentials.BearerToken != "" || c.Credentials.Request != nil {
		t.Fatalf("bound message: %+v", c)
	}
	if c := msg(in.Header); c.Agent != nil {
		t.Fatalf("forged reference gave agent %v", c.Agent)
	}
	unbind()
	if c := msg(r.Header); c.Agent != nil {
		t.Fatalf("reference outlived its request: agent %v", c.Agent)
	}
	if c := h.Credentials(&sdk.CallToolRequest{}); c.Agent != nil {
		t.Fatalf("message without HTTP headers got agent %v", c.Agent)
	}
}
