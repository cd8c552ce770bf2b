package ledger

import (
	"errors"
	"testing"
)

func TestRedactPaths(t *testing.T) {
	got, err := RedactPaths([]byte(`{"a":{"key":"s3cr3t","keep":1},"list":["x","tok"]}`), []string{"$.a.key", "$.list[1]"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":{"keep":1,"key":"[REDACTED]"},"list":["x","[REDACTED]"]}`
	if string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := RedactPaths([]byte(`{"a":1}`), []string{"$.b"}); !errors.Is(err, ErrNotRedactable) {
		t.Errorf("unlocated path: err = %v, want ErrNotRedactable", err)
	}
	if _, err := RedactPaths([]byte(`{"a":`), []string{"$.a"}); !errors.Is(err, ErrNotRedactable) {
		t.Errorf("invalid JSON: err = %v, want ErrNotRedactable", err)
	}
	if got, err := RedactPaths([]byte(`"whole secret"`), []string{"$"}); err != nil || string(got) != `"[REDACTED]"` {
		t.Errorf("root path: %s, %v", got, err)
	}
}
