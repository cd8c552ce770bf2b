package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/server"
)

// ApproverKeysFile holds approvers' API keys: a key store of their own, apart from the agents'.
const ApproverKeysFile = "approver-keys.json"

// approvers authenticates the people who approve. An approver proves who they are with an
// approver API key or with a token from a configured user issuer; either way their ID must be
// declared in approvals.approvers, which also gives their scopes. Agent credentials are refused:
// agents' keys are not in the approvers' key store, and an agent's ID cannot be declared an
// approver (config validation).
type approvers struct {
	keys identity.KeyStore
	auth *swappableAuth
	list atomic.Pointer[map[string]config.ApproverConfig] // lower-cased ID → approver
}

func (a *approvers) set(list []config.ApproverConfig) {
	m := make(map[string]config.ApproverConfig, len(list))
	for _, ap := range list {
		m[strings.ToLower(ap.ID)] = ap
	}
	a.list.Store(&m)
}

var _ server.ApproverAuth = (*approvers)(nil)

func (a *approvers) Approver(ctx context.Context, r *http.Request) (approval.Approver, error) {
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	cred = strings.TrimSpace(cred)
	if !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return approval.Approver{}, server.ErrNotApprover
	}
	var id string
	if strings.HasPrefix(cred, identity.APIKeyPrefix) {
		rec, err := identity.CheckAPIKey(ctx, a.keys, cred, time.Now())
		if err != nil {
			return approval.Approver{}, fmt.Errorf("%w: %v", server.ErrNotApprover, err)
		}
		id = rec.AgentID // the key store's owner field holds the approver's ID here
	} else {
		u, err := a.auth.cur.Load().UserFromToken(ctx, cred)
		if err != nil {
			return approval.Approver{}, fmt.Errorf("%w: %v", server.ErrNotApprover, err)
		}
		if u == nil || !u.Verified {
			return approval.Approver{}, errors.Join(server.ErrNotApprover, errors.New("token names no verified user"))
		}
		id = u.ID
	}
	ap, ok := (*a.list.Load())[strings.ToLower(id)]
	if !ok {
		return approval.Approver{}, fmt.Errorf("%w: %q is not a declared approver", server.ErrNotApprover, id)
	}
	return approval.Approver{ID: ap.ID, Kind: approval.Human, Scopes: ap.Scopes}, nil
}
