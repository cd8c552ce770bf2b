package approval

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: Wait, Run and the webhook
// must all stop with their context.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
