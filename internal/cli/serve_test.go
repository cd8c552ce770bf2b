package cli

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/config"
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

// The memory limit: the configured value, else three quarters of the container's limit, else
// the default; none with -1; GOMEMLIMIT, when set, decides.
func TestTuneMemory(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")
	dir := t.TempDir()
	cg := filepath.Join(dir, "memory.max")
	none := []string{filepath.Join(dir, "absent")}
	if err := os.WriteFile(cg, []byte("2147483648\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unlimited := filepath.Join(dir, "unlimited")
	if err := os.WriteFile(unlimited, []byte("max\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		mib   int64
		files []string
		want  int64
	}{
		{"configured", 256, []string{cg}, 256 << 20},
		{"container", 0, []string{cg}, 1536 << 20},
		{"no container", 0, none, config.DefaultMemoryLimitMiB << 20},
		{"container without limit", 0, []string{unlimited}, config.DefaultMemoryLimitMiB << 20},
		{"none", -1, []string{cg}, math.MaxInt64},
	} {
		debug.SetMemoryLimit(math.MaxInt64)
		tuneMemory(c.mib, c.files)
		if got := debug.SetMemoryLimit(-1); got != c.want {
			t.Errorf("%s: memory limit %d, want %d", c.name, got, c.want)
		}
	}
	t.Setenv("GOMEMLIMIT", "300MiB")
	debug.SetMemoryLimit(math.MaxInt64)
	tuneMemory(256, []string{cg})
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT set: memory limit changed to %d", got)
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
