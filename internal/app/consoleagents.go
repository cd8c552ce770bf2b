package app

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/portcullis-ai/portcullis/internal/console"
	"github.com/portcullis-ai/portcullis/internal/identity"
)

// consoleAgents is the console's agent directory: the agents of the identity configuration in
// force and their credentials' metadata — API keys from the agents' key store, signing keys from
// the configuration. Key material and key hashes never leave it.
type consoleAgents struct {
	rt   *atomic.Pointer[runtimeState]
	keys identity.KeyStore
	now  func() time.Time
}

func (d consoleAgents) ConsoleAgents(ctx context.Context) ([]console.DeclaredAgent, error) {
	st := d.rt.Load()
	if st == nil {
		return nil, nil
	}
	recs, err := d.keys.List(ctx, "")
	if err != nil {
		return nil, err
	}
	now := d.now()
	byAgent := map[string][]console.Credential{}
	for _, k := range recs {
		byAgent[k.AgentID] = append(byAgent[k.AgentID], console.Credential{Kind: "api key", ID: k.ID, Label: k.Label,
			Created: k.CreatedAt, Expires: k.ExpiresAt, Status: k.Status(now)})
	}
	out := make([]console.DeclaredAgent, 0, len(st.cfg.Identity.Agents))
	for _, a := range st.cfg.Identity.Agents {
		creds := byAgent[a.ID]
		for _, k := range a.SigningKeys {
			status := "active"
			if !k.NotAfter.IsZero() && !now.Before(k.NotAfter) {
				status = "expired"
			}
			creds = append(creds, console.Credential{Kind: "signing key", ID: k.ID, Expires: k.NotAfter, Status: status})
		}
		out = append(out, console.DeclaredAgent{ID: a.ID, Roles: a.Roles, TrustAssertedUser: a.TrustAssertedUser, Credentials: creds})
	}
	return out, nil
}
