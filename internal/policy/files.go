package policy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Limits bound what the loader accepts, so that a hostile or broken file yields a clear error
// instead of exhausting memory or time.
type Limits struct {
	MaxFileBytes int64 // per file
	MaxRules     int   // per set
	MaxDepth     int   // YAML nesting depth
	MaxExprBytes int   // per CEL expression
	MaxFiles     int   // per set
}

// DefaultLimits are the limits Parse, ParseFiles and Load apply.
var DefaultLimits = Limits{
	MaxFileBytes: 8 << 20,
	MaxRules:     100_000,
	MaxDepth:     32,
	MaxExprBytes: 4096,
	MaxFiles:     10_000,
}

// TestFileSuffixes name files that hold `portcullis policy test` cases; loading a directory skips them.
var TestFileSuffixes = []string{"_test.yaml", "_test.yml"}

// IsTestFile reports whether name is a policy test file rather than a policy file.
func IsTestFile(name string) bool {
	for _, s := range TestFileSuffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// ParseFiles reads and parses every path: a file is read as is; a directory contributes its
// *.yaml and *.yml files (not recursively, test files skipped) in name order. All errors of all
// files are returned together as an ErrorList.
func ParseFiles(paths ...string) ([]*File, error) {
	srcs, err := ReadSources(paths...)
	if err != nil {
		return nil, err
	}
	return ParseSources(srcs)
}

// Source is one policy file as read: its name and its exact bytes. A hot reload parses the bytes
// it has checked for stability, never a second read of the file.
type Source struct {
	Name string
	Data []byte
}

// ReadSources reads the policy files paths name (see ExpandPaths), each within the size limit.
// Unreadable or oversized files are reported together as an ErrorList.
func ReadSources(paths ...string) ([]Source, error) {
	names, err := ExpandPaths(paths...)
	if err != nil {
		return nil, err
	}
	if len(names) > DefaultLimits.MaxFiles {
		return nil, ErrorList{{Pos: Pos{File: paths[0]}, Msg: fmt.Sprintf("%d policy files, more than the limit of %d", len(names), DefaultLimits.MaxFiles)}}
	}
	srcs := make([]Source, 0, len(names))
	var errs ErrorList
	for _, name := range names {
		data, err := readLimited(name, DefaultLimits.MaxFileBytes)
		if err != nil {
			errs = append(errs, &Error{Pos: Pos{File: name, Line: 1, Col: 1}, Msg: err.Error(), Hint: "policy files must be readable and at most " + humanBytes(DefaultLimits.MaxFileBytes)})
			continue
		}
		srcs = append(srcs, Source{Name: name, Data: data})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return srcs, nil
}

// ParseSources parses files already read, as one set: all errors of all files come back together.
func ParseSources(srcs []Source) ([]*File, error) {
	if len(srcs) > DefaultLimits.MaxFiles {
		return nil, ErrorList{{Pos: Pos{File: srcs[0].Name}, Msg: fmt.Sprintf("%d policy files, more than the limit of %d", len(srcs), DefaultLimits.MaxFiles)}}
	}
	var files []*File
	var errs ErrorList
	for _, src := range srcs {
		if int64(len(src.Data)) > DefaultLimits.MaxFileBytes {
			errs = append(errs, &Error{Pos: Pos{File: src.Name, Line: 1, Col: 1}, Msg: "file is larger than the " + humanBytes(DefaultLimits.MaxFileBytes) + " limit",
				Hint: "policy files must be readable and at most " + humanBytes(DefaultLimits.MaxFileBytes)})
			continue
		}
		f, err := Parse(src.Name, src.Data)
		if err != nil {
			var l ErrorList
			if errors.As(err, &l) {
				errs = append(errs, l...)
				continue
			}
			return nil, err
		}
		files = append(files, f)
	}
	errs = append(errs, checkSet(files)...)
	if len(errs) > 0 {
		return nil, errs
	}
	return files, nil
}

// ExpandPaths turns files and directories into the list of policy files they name.
func ExpandPaths(paths ...string) ([]string, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("load policy: no path given")
	}
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("load policy: %w", err)
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("load policy: %w", err)
		}
		for _, e := range ents {
			n := e.Name()
			if e.IsDir() || strings.HasPrefix(n, ".") || IsTestFile(n) {
				continue
			}
			if strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml") {
				out = append(out, filepath.Join(p, n))
			}
		}
	}
	return out, nil
}

func readLimited(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("file is larger than the %s limit", humanBytes(max))
	}
	return data, nil
}

func humanBytes(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// checkSet finds problems that span files: two policies for one agent.
func checkSet(files []*File) ErrorList {
	var errs ErrorList
	seen := map[string]Pos{}
	rules := 0
	for _, f := range files {
		for _, p := range f.Policies {
			rules += len(p.Rules)
			if first, dup := seen[p.AgentID]; dup {
				errs = append(errs, &Error{Pos: p.Pos, Key: "agent_id", Msg: fmt.Sprintf("second policy for agent %q (the first is at %s)", p.AgentID, first),
					Hint: "each agent has exactly one policy in a set; merge the rules into one policy"})
				continue
			}
			seen[p.AgentID] = p.Pos
		}
	}
	if rules > DefaultLimits.MaxRules && len(files) > 0 {
		errs = append(errs, &Error{Pos: Pos{File: files[0].Name, Line: 1, Col: 1}, Msg: fmt.Sprintf("the set has %d rules, more than the limit of %d", rules, DefaultLimits.MaxRules),
			Hint: "split the agents' policies across gateways, or use tool patterns instead of one rule per tool"})
	}
	return errs
}
