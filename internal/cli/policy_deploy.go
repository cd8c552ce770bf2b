package cli

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/policy"
)

func init() {
	registerPolicySub("deploy", "install policy files atomically: FILE... --to DIR (checked, written beside, fsynced, renamed)", runPolicyDeploy)
}

// runPolicyDeploy installs policy files into a watched directory the way the hot reload needs:
// the gateway must never see a file half written. Each file is checked with the gateway's parser
// together with the rest of the directory, written to a hidden temporary file in the target
// directory (same file system, ignored by the reloader), fsynced, renamed over the target, and the
// directory is fsynced so the rename survives a crash.
func runPolicyDeploy(_ context.Context, std Stdio, args []string) int {
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "Usage: portcullis policy deploy FILE... --to DIR")
	}
	var dir string
	var files []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-h" || a == "--help":
			usage(std.Out)
			return exitOK
		case a == "--to" || a == "-to":
			if i+1 >= len(args) {
				problem(std.Err, "policy deploy: --to needs a directory", "portcullis policy deploy new.yaml --to /etc/portcullis/policies")
				return exitUsage
			}
			i++
			dir = args[i]
		case strings.HasPrefix(a, "--to=") || strings.HasPrefix(a, "-to="):
			_, dir, _ = strings.Cut(a, "=")
		case strings.HasPrefix(a, "-") && a != "-":
			problem(std.Err, fmt.Sprintf("policy deploy: unknown flag %q", a), "portcullis policy deploy FILE... --to DIR")
			return exitUsage
		default:
			files = append(files, a)
		}
	}
	if dir == "" || len(files) == 0 {
		problem(std.Err, "policy deploy: give the files and the target directory", "portcullis policy deploy new.yaml --to /etc/portcullis/policies")
		return exitUsage
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		problem(std.Err, fmt.Sprintf("policy deploy: %s is not a directory", dir), "--to names the policy directory the gateway's configuration lists under policies")
		return exitUsage
	}

	// Read each new file once: the bytes checked are the bytes written.
	incoming := map[string][]byte{}
	var order []string
	for _, f := range files {
		base := filepath.Base(f)
		if strings.HasPrefix(base, ".") || policy.IsTestFile(base) || (!strings.HasSuffix(base, ".yaml") && !strings.HasSuffix(base, ".yml")) {
			problem(std.Err, fmt.Sprintf("policy deploy: %s would not be loaded by the gateway", f), "policy files are named *.yaml or *.yml, not hidden, not *_test.yaml")
			return exitUsage
		}
		if _, dup := incoming[base]; dup {
			problem(std.Err, fmt.Sprintf("policy deploy: two files named %s", base), "")
			return exitUsage
		}
		data, err := readPolicyFile(f)
		if err != nil {
			problem(std.Err, fmt.Sprintf("policy deploy: %v", err), "")
			return exitUsage
		}
		incoming[base] = data
		order = append(order, base)
	}

	return installPolicies(std, "policy deploy", dir, incoming, order, false)
}

// installPolicies writes incoming (by base name, in order) into the watched directory dir as
// deploy does: the set the gateway will load — the directory with the new files in place and,
// when replace, without the policy files incoming does not name — is checked first, then each
// file is written beside, fsynced and renamed, and the files left out are removed last. The
// reloader only loads a set that reads the same twice, so it never serves a mix for long, and a
// mix that does not load is rejected while the previous set keeps serving.
func installPolicies(std Stdio, cmd, dir string, incoming map[string][]byte, order []string, replace bool) int {
	current, err := policy.ReadSources(dir)
	if err != nil {
		return printLoadError(std.Err, err)
	}
	var set []policy.Source
	var stale []string
	for _, s := range current {
		if _, replaced := incoming[filepath.Base(s.Name)]; replaced {
			continue
		}
		if replace {
			stale = append(stale, s.Name)
			continue
		}
		set = append(set, s)
	}
	for _, base := range order {
		set = append(set, policy.Source{Name: filepath.Join(dir, base), Data: incoming[base]})
	}
	checked, err := policy.LoadSources(set)
	if err != nil {
		return printLoadError(std.Err, err)
	}

	for _, base := range order {
		target := filepath.Join(dir, base)
		if err := atomicWrite(target, incoming[base]); err != nil {
			problem(std.Err, fmt.Sprintf("%s: %v", cmd, err), "the files already renamed are in place; nothing was left half written")
			return exitFail
		}
		fmt.Fprintf(std.Out, "deployed %s sha256:%x\n", target, sha256.Sum256(incoming[base]))
	}
	for _, name := range stale {
		if err := removeSynced(name); err != nil {
			problem(std.Err, fmt.Sprintf("%s: %v", cmd, err), "the new files are in place; remove the file by hand")
			return exitFail
		}
		fmt.Fprintf(std.Out, "removed %s\n", name)
	}
	fmt.Fprintf(std.Out, "ok: %d files, %d policies, %d rules in %s\n", len(checked.Files()), len(checked.Agents()), checked.RuleCount(), dir)
	return exitOK
}

// removeSynced removes name and fsyncs its directory, so the removal survives a crash.
func removeSynced(name string) error {
	if err := os.Remove(name); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func readPolicyFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, policy.DefaultLimits.MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > policy.DefaultLimits.MaxFileBytes {
		return nil, fmt.Errorf("read %s: larger than the %d-byte limit", name, policy.DefaultLimits.MaxFileBytes)
	}
	return data, nil
}

// atomicWrite replaces target with data so that a reader sees the old file or the new one, whole:
// a hidden temporary file beside it (same file system, so the rename is atomic), fsynced before
// the rename, the directory fsynced after it.
func atomicWrite(target string, data []byte) (err error) {
	dir, base := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	mode := fs.FileMode(0o600)
	if st, err := os.Stat(target); err == nil {
		mode = st.Mode().Perm()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stat %s: %w", target, err)
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("rename into %s: %w", target, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
