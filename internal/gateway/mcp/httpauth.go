package mcp

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/identity"
)

// verifiedHeader carries, inside the process only, the reference under which HTTPAgents keeps
// the agent authenticated for one HTTP request. Bind removes whatever a client sent under this
// name, so the value the SDK hands back with each message is always Bind's own.
const verifiedHeader = "X-Portcullis-Verified-Agent"

// HTTPAgents hands the agent that the HTTP layer authenticated for one request to the MCP
// messages that request carries, so that every decision they lead to uses that agent
// (guard.Request.Agent) instead of verifying the credential again.
//
// Authenticating once per HTTP request is what makes signed requests (RFC 9421) possible on
// Streamable HTTP: the signature covers the HTTP request — its method, path and body digest —
// and its nonce is single-use, so it can be verified exactly once, before the SDK reads the
// body; verifying it again per message would see a replay. It also saves the second
// verification of API keys and JWTs.
type HTTPAgents struct {
	m sync.Map // reference → *identity.Agent, while the HTTP request is being served
}

// Bind returns r carrying a reference to agent, and a function that drops the binding; call it
// when the request has been served. A message whose request is no longer bound has no agent and
// is refused as unauthenticated.
func (h *HTTPAgents) Bind(r *http.Request, agent *identity.Agent) (*http.Request, func()) {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	ref := hex.EncodeToString(b[:])
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = r.Header.Clone()
	r2.Header.Set(verifiedHeader, ref)
	h.m.Store(ref, agent)
	return r2, func() { h.m.Delete(ref) }
}

// Credentials is the CredentialsFunc of a Streamable HTTP server behind Bind: the agent bound to
// the message's HTTP request and the invoking user's token from its headers. Credentials in the
// headers are not read: a message that reached the server without passing Bind has no agent.
func (h *HTTPAgents) Credentials(req sdk.Request) Caller {
	ex := req.GetExtra()
	if ex == nil || ex.Header == nil {
		return Caller{}
	}
	c := Caller{UserToken: ex.Header.Get(UserTokenHeader)}
	if ref := ex.Header.Get(verifiedHeader); ref != "" {
		if a, ok := h.m.Load(ref); ok {
			c.Agent = a.(*identity.Agent)
		}
	}
	return c
}
