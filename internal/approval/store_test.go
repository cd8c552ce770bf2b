package approval_test

import (
	"testing"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/store/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.RunApprovalStore(t, func(t *testing.T) approval.Store { return approval.NewMemory() })
}
