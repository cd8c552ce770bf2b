package cli

import (
	"context"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/app"
)

// Without GOGC the gateway raises the collector's target; with GOGC set, the operator decides.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	os.Unsetenv("GOGC")
	debug.SetGCPercent(100)
	tuneGC()
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, defaultGCPercent)
	}
	t.Setenv("GOGC", "100")
	tuneGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=100: GC percent %d, want 100 (the operator's choice)", got)
	}
}

// A gateway whose database cannot be reached exits non-zero at once, naming the store and the
// environment variable, without repeating the password.
func TestServeRefusesUnreachableDatabase(t *testing.T) {
	dir := t.TempDir()
	cfgPath, _, err := app.Init(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\nstore:\n  ledger: postgres\n  postgres:\n    dsn_env: PCL_TEST_DSN\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PCL_TEST_DSN", "postgres://portcullis:hunter2@127.0.0.1:1/ledger")
	code, _, stderr := run(t, "", "serve", "--data", dir, "--listen", "127.0.0.1:0")
	if code != exitFail {
		t.Errorf("exit code %d, want %d", code, exitFail)
	}
	for _, want := range []string{"store.postgres", "$PCL_TEST_DSN", "hint:"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "hunter2") {
		t.Errorf("stderr repeats the password:\n%s", stderr)
	}
}
