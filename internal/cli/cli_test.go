package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/config"
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
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, _ := run(t, "", args...)
		if code != exitOK || stdout != "portcullis v1.2.3 (commit abc123, built 2026-12-07T00:00:00Z, "+runtime.Version()+")\n" {
			t.Errorf("%v: code %d, stdout %q", args, code, stdout)
		}
	}
}

// Every command and subcommand answers -h and --help on stdout with exit 0, in one style, and
// `help CMD [SUB]` is the same.
func TestHelpEverywhere(t *testing.T) {
	var cmds [][]string
	for _, c := range commandNames() {
		cmds = append(cmds, []string{c})
	}
	for c, subs := range subcommands() {
		for _, s := range subs {
			cmds = append(cmds, []string{c, s})
		}
	}
	cmds = append(cmds, []string{"approvals", "keys", "create"}, []string{"approvals", "keys", "list"}, []string{"mcp", "pins", "list"})
	for _, c := range cmds {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, c...), h)
			code, out, errOut := run(t, "", args...)
			if code != exitOK || !strings.Contains(out, "Usage") || strings.Contains(out, "Usage of") {
				t.Errorf("%v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
			}
		}
		code, out, _ := run(t, "", append([]string{"help"}, c...)...)
		if code != exitOK || !strings.Contains(out, "Usage") {
			t.Errorf("help %v: exit %d\n%s", c, code, out)
		}
	}
}

func TestDidYouMean(t *testing.T) {
	for args, want := range map[string]string{
		"servre":          "did you mean 'portcullis serve'?",
		"aprovals list":   "did you mean 'portcullis approvals'?",
		"policy chek x":   "did you mean 'portcullis policy check'?",
		"audit tial":      "did you mean 'portcullis audit tail'?",
		"config chekc":    "did you mean 'portcullis config check'?",
		"help servre":     "did you mean 'portcullis serve'?",
		"keys rotate":     "run 'portcullis keys -h'",
		"completion bsah": "did you mean 'portcullis completion bash'?",
	} {
		code, _, errOut := run(t, "", strings.Fields(args)...)
		if code != exitUsage || !strings.Contains(errOut, "unknown command") || !strings.Contains(errOut, want) {
			t.Errorf("%s: exit %d, stderr %q; want %q", args, code, errOut, want)
		}
	}
}

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "complete -F _portcullis portcullis",
		"zsh":  "#compdef portcullis",
		"fish": "__fish_seen_subcommand_from policy",
	} {
		code, out, _ := run(t, "", "completion", shell)
		if code != exitOK || !strings.Contains(out, want) || !strings.Contains(out, "approvals") || !strings.Contains(out, "check deploy eval lint promote replay suggest test") {
			t.Errorf("%s: exit %d\n%s", shell, code, out)
		}
	}
}

// approvals reads the gateway's address from its configuration instead of assuming :8080.
func TestApprovalsURLFromConfiguration(t *testing.T) {
	t.Setenv("PORTCULLIS_URL", "")
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Path
		w.Write([]byte(`{"approvals":[]}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	// Listening on every interface: reached on the loopback.
	if err := os.WriteFile(filepath.Join(dir, "portcullis.yaml"), fmt.Appendf(nil, "listen: \":%d\"\n", port), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, "", "approvals", "list", "--data", dir, "--key", "pcl_x")
	if code != exitOK || got != "/v1/approvals" {
		t.Errorf("approvals list did not reach the configured gateway: %d %q %s", code, got, errOut)
	}
	if err := os.WriteFile(filepath.Join(dir, "portcullis.yaml"), []byte("listne: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "", "approvals", "list", "--data", dir, "--key", "pcl_x"); code != exitFail || !strings.Contains(errOut, `did you mean "listen"`) {
		t.Errorf("bad configuration: %d %s", code, errOut)
	}
}

func TestWarnAllInterfaces(t *testing.T) {
	for addr, warn := range map[string]bool{":8080": true, "0.0.0.0:8080": true, "[::]:8080": true, "127.0.0.1:8080": false, "[::1]:0": false, "10.0.0.5:80": false} {
		var b bytes.Buffer
		warnAllInterfaces(slog.New(slog.NewTextHandler(&b, nil)), addr)
		if got := strings.Contains(b.String(), "every network interface"); got != warn {
			t.Errorf("%s: warned %v, want %v: %s", addr, got, warn, b.String())
		}
	}
}

func TestLogFormats(t *testing.T) {
	var b bytes.Buffer
	newLogger(Stdio{Err: &b}, config.LogConfig{Level: "info", Format: "auto"}).Info("hello", "n", 1)
	if !strings.HasPrefix(b.String(), `{"time":`) {
		t.Errorf("auto, not a terminal: %q", b.String())
	}
	b.Reset()
	newLogger(Stdio{Err: &b}, config.LogConfig{Level: "info", Format: "console"}).Info("hello", "n", 1)
	if !regexp.MustCompile(`^time=\d\d:\d\d:\d\d\.\d{3} level=INFO msg=hello n=1\n$`).MatchString(b.String()) {
		t.Errorf("console: %q", b.String())
	}
}

// approvals show for a person: one field a line, durations as durations, times relative to now.
func TestApprovalsShowTable(t *testing.T) {
	exp := time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"id":"apr_1","agent":"a","tool":"t","params":{"x":1},"rule":"r","threat_level":"high","required_approvals":1,"grant_ttl":900000000000,"state":"pending","expires_at":%q}`, exp)
	}))
	defer srv.Close()
	code, out, errOut := run(t, "", "approvals", "show", "apr_1", "--url", srv.URL, "--key", "k", "--format", "table")
	for _, want := range []string{"ID                apr_1\n", "Grant lifetime    15m0s\n", "Threat            high\n"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("lacks %q: %d\n%s%s", want, code, out, errOut)
		}
	}
	if !regexp.MustCompile(`Expires +\S+ \S+ \(in (9m5\ds|10m0s)\)`).MatchString(out) {
		t.Errorf("expiry not relative to now:\n%s", out)
	}
	_, out, _ = run(t, "", "approvals", "show", "apr_1", "--url", srv.URL, "--key", "k")
	if !strings.Contains(out, `"grant_ttl": 900000000000`) {
		t.Errorf("piped output is not the API's JSON: %s", out)
	}
}
