package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's test command is the one CI runs, and it says loudly which suites it could not run:
// scripts/test.sh, in a checkout without the e2e npm packages and with go stubbed out, names them
// and the command that runs everything, and passes go test's exit status through.
func TestTestCommandNamesSkippedSuites(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile("(?m)^make test +#").Match(readme) {
		t.Fatal("the README's quick start no longer gives `make test` as the test command")
	}
	if !regexp.MustCompile(`(?m)^make test$`).Match(ci) {
		t.Fatal(".ci/run no longer runs the README's test command, `make test`")
	}

	for _, goExit := range []string{"0", "1"} {
		root := t.TempDir()
		for _, d := range []string{"scripts", "e2e", "bench/compare", "bin"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		script, err := os.ReadFile("../scripts/test.sh")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "scripts/test.sh"), script, 0o755); err != nil {
			t.Fatal(err)
		}
		fakeGo := "#!/bin/sh\necho \"go $*\" >> \"" + filepath.Join(root, "go.log") + "\"\nexit " + goExit + "\n"
		if err := os.WriteFile(filepath.Join(root, "bin/go"), []byte(fakeGo), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", filepath.Join(root, "scripts/test.sh"))
		cmd.Env = append(os.Environ(), "PATH="+filepath.Join(root, "bin")+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if (code == 0) != (goExit == "0") {
			t.Errorf("go test exit %s, test.sh exit %d:\n%s", goExit, code, out)
		}
		for _, want := range []string{"NOT THE WHOLE SUITE", "e2e/node_modules is absent", "e2e/conformance/node_modules is absent", "e2e/frameworks/node_modules is absent", ".ci/run"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("test.sh output lacks %q:\n%s", want, out)
			}
		}
		log, _ := os.ReadFile(filepath.Join(root, "go.log"))
		if !strings.Contains(string(log), "go test -race -count=1 -timeout 30m ./...") {
			t.Errorf("test.sh did not run the race-enabled suite; it ran:\n%s", log)
		}
	}
}
