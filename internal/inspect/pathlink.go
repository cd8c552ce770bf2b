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

// resolvePath follows every link in p (absolute, cleaned), including a last component that is a
// link to a file not created yet; the part of p that does not exist is kept as written.
func resolvePath(p string) (string, error) {
	rest := ""
	for hops := 0; ; {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		// p or a link on its way does not exist: a dangling link is followed by hand (writing
		// through it creates its target), anything else is a name still to be created.
		if fi, lerr := os.Lstat(p); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			if hops++; hops > maxLinkHops {
				return "", errors.New("too many links")
			}
			target, err := os.Readlink(p)
			if err != nil {
				return "", err
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(p), target)
			}
			p = filepath.Clean(target)
			continue
		}
		dir, base := filepath.Dir(p), filepath.Base(p)
		if dir == p {
			return filepath.Join(p, rest), nil
		}
		rest = filepath.Join(base, rest)
		p = dir
	}
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
		p = filepath.Join(r.lexical[0], p)
	}
	p = filepath.Clean(p)
	real, err := resolvePath(p)
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
