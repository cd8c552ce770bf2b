package cli

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/version"
)

// run invokes Main in-process and returns exit code, stdout and stderr.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestUnknownCommand(t *testing.T) {
	code, _, stderr := run(t, "", "frobnicate")
	if code != exitUsage {
		t.Errorf("exit code = %d, want %d", code, exitUsage)
	}
	if !strings.Contains(stderr, `unknown command "frobnicate"`) || !strings.Contains(stderr, "hint:") {
		t.Errorf("stderr = %q, want the unknown command and a hint", stderr)
	}
}

func TestHelpListsCommands(t *testing.T) {
	code, stdout, _ := run(t, "", "help")
	if code != exitOK || !strings.Contains(stdout, "version") {
		t.Errorf("help: code %d, stdout %q", code, stdout)
	}
}

// `portcullis version` prints the build stamp a release sets with -ldflags -X.
func TestVersionPrintsTheStamp(t *testing.T) {
	defer func(v, c, d string) { version.Version, version.Commit, version.Date = v, c, d }(version.Version, version.Commit, version.Date)
	version.Version, version.Commit, version.Date = "v1.2.3", "abc123", "2026-12-07T00:00:00Z"
	code, stdout, _ := run(t, "", "version")
	if code != exitOK || stdout != "portcullis v1.2.3 (commit abc123, built 2026-12-07T00:00:00Z, "+runtime.Version()+")\n" {
		t.Errorf("version: code %d, stdout %q", code, stdout)
	}
}
