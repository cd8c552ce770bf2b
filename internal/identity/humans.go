package identity

import (
	"context"
	"time"
)

// CheckAPIKey verifies key against ks (hash, constant-time comparison, expiry, revocation) and
// returns its record. It serves credentials that are not agents' — approvers' keys live in a key
// store of their own, so an agent's key can never pass as an approver's.
func CheckAPIKey(ctx context.Context, ks KeyStore, key string, now time.Time) (KeyRecord, error) {
	return checkAPIKey(ctx, ks, key, now)
}

// UserFromToken verifies a token from one of the configured user issuers and returns the person
// it names, without an agent: for humans who act on the gateway themselves (approvers).
func (v *Verifier) UserFromToken(ctx context.Context, token string) (*User, error) {
	return v.verifyUserToken(ctx, token)
}
