package inspect

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// The path detector's rules are lexical: they read the string the agent sent, not the file the
// tool's server will open, and a link inside a root that points outside it passes them. Only a
// gateway that shares the tool server's file system (a stdio server it starts on the same host)
// can see the link; DetectorConfig.ResolveLinks makes the detector follow links there.

// maxLinkHops bounds the links followed for one path (the kernel's own limit is 40).
const maxLinkHops = 40

// linkResolver resolves path arguments against the real file system.
type linkResolver struct {
	lexical []string // the configured roots, cleaned, OS separators
	roots   []string // the same with their own links resolved
}

func newLinkResolver(roots []string) *linkResolver {
	if len(roots) == 0 {
		return nil // nothing to resolve against: relative paths have no base, and no boundary to leave
	}
	r := &linkResolver{}
	for _, root := range roots {
		root = filepath.Clean(root)
		real, err := resolvePath(root)
		if err != nil {
			real = root // judged lexically until it exists
		}
		r.lexical, r.roots = append(r.lexical, root), append(r.roots, real)
	}
	return r
}

// inRoots reports p inside one of roots or equal to one.
func inRoots(p string, roots []string) bool {
	for _, root := range roots {
		if p == root || strings.HasPrefix(p, root) && (strings.HasSuffix(root, string(filepath.Separator)) || p[len(root)] == filepath.Separator) {
			return true
		}
	}
	return false
}

// resolvePath follows every link in p (absolute), component by component from the root as the
// kernel does — ".." after a link climbs from where the link led — including a last component
// that is a link to a file not created yet; from the first component that does not exist, the
// rest of p is kept as written. Each component costs one lstat, so the work is linear in p
// (plus maxLinkHops link targets).
func resolvePath(p string) (string, error) {
	sep := string(filepath.Separator)
	parts := strings.Split(p, sep)
	resolved := sep
	for i, hops := 0, 0; i < len(parts); i++ {
		part := parts[i]
		switch part {
		case "", ".":
			continue
		case "..":
			resolved = filepath.Dir(resolved)
			continue
		}
		next := filepath.Join(resolved, part)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return filepath.Join(append([]string{next}, parts[i+1:]...)...), nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", errors.New("too many links")
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			resolved = sep
		}
		// The link's target takes its place; what followed it is read after the target.
		parts = append(strings.Split(target, sep), parts[i+1:]...)
		i = -1
	}
	return resolved, nil
}

// inspect judges raw, a path-like argument: where it leads once links are followed. A relative
// path is taken relative to the first root (the directory a stdio file server is given).
func (r *linkResolver) inspect(raw string) (Finding, bool) {
	if raw == "" || len(raw) > 4096 || strings.IndexByte(raw, 0) >= 0 || strings.Contains(raw, "://") {
		return Finding{}, false
	}
	p := raw
	if strings.HasPrefix(p, "~") {
		return Finding{}, false // the server's home directory, which the gateway's may not be
	}
	if !filepath.IsAbs(p) {
		p = r.lexical[0] + string(filepath.Separator) + p
	}
	// Resolved as written (a ".." after a link climbs from the link's target, as the kernel
	// reads it); judged lexically as cleaned.
	real, err := resolvePath(p)
	p = filepath.Clean(p)
	if err != nil {
		// Fail closed: a path whose links cannot be followed (a loop, no permission) could lead
		// anywhere.
		return Finding{Kind: KindPathTraversal, Severity: threat.High, Score: 0.85,
			Evidence: "path could not be resolved (" + err.Error() + "): " + excerpt(raw, 0)}, true
	}
	if real == p {
		return Finding{}, false // no link on the way: the lexical rules judged this path
	}
	low := strings.ToLower(filepath.ToSlash(real))
	if target, credential := sensitiveTarget(low); credential || target != "" {
		return Finding{Kind: KindPathTraversal, Severity: threat.High, Score: 0.9,
			Evidence: "path leads through a link to " + target + ": " + excerpt(raw, 0)}, true
	}
	if (inRoots(p, r.lexical) || inRoots(p, r.roots)) && !inRoots(real, r.roots) {
		return Finding{Kind: KindPathTraversal, Severity: threat.High, Score: 0.9,
			Evidence: "path leads through a link outside the allowed roots, to " + excerpt(real, 0) + ": " + excerpt(raw, 0)}, true
	}
	return Finding{}, false
}
