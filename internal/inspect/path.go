package inspect

import (
	"path"
	"strings"
	"unicode/utf8"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// pathDetector finds path traversal and local file inclusion. It decodes each reading itself —
// repeatedly, tolerating broken escapes — because traversal payloads live on encodings no URL
// parser accepts: double encoding (%252e), %u escapes, 0x2e literals, overlong UTF-8 (%c0%ae),
// full-width dots. Findings, by severity:
//
//   - high: two or more "up" components, any "up" component that needed decoding to be seen,
//     a NUL byte in a path, overlong UTF-8 escapes, UNC paths, file:// and PHP stream wrappers,
//     credential files (/etc/shadow, ~/.ssh/id_*, /proc/self/environ, SAM, ...);
//   - medium: other system files (/etc/passwd, win.ini, boot.ini, ...), and — only when roots are
//     configured — an absolute path in a path-like parameter that lies outside every root;
//   - low: a single plain "../" (agents legitimately say "cd ..").
type pathDetector struct {
	roots []string      // cleaned, slash-separated, lower-case, each ending in "/"
	links *linkResolver // nil: the rules are lexical only (see DetectorConfig.ResolveLinks)
}

var _ Detector = (*pathDetector)(nil)

func newPathDetector(roots []string) *pathDetector {
	d := &pathDetector{}
	for _, r := range roots {
		r = strings.ToLower(strings.ReplaceAll(r, `\`, "/"))
		r = path.Clean(r)
		if !strings.HasSuffix(r, "/") {
			r += "/"
		}
		d.roots = append(d.roots, r)
	}
	return d
}

// newPathDetectorLinks is newPathDetector that also follows links when resolveLinks is set.
func newPathDetectorLinks(roots []string, resolveLinks bool) *pathDetector {
	d := newPathDetector(roots)
	if resolveLinks {
		d.links = newLinkResolver(roots)
	}
	return d
}

func (*pathDetector) Name() string { return "path" }

// maxPathScan bounds the bytes of a value the path detector decodes.
const maxPathScan = 8192

func (d *pathDetector) Inspect(c *Call, v *Value, report func(Finding)) {
	if c.Direction != Request {
		return
	}
	pathKey := v.keyIs(factPathKey, isPathKey)
	var best Finding
	readings(v, func(r string) bool {
		if v.foldsRaw(r) {
			return true
		}
		if len(r) > maxPathScan {
			r = r[:maxPathScan]
		}
		if f, ok := d.inspectReading(r, v.readingChars(r), pathKey); ok && (best.Kind == "" || f.Severity > best.Severity || f.Severity == best.Severity && f.Score > best.Score) {
			best = f
		}
		return best.Severity < threat.High
	})
	if d.links != nil && pathKey && best.Severity < threat.High && !v.IsKey {
		if f, ok := d.links.inspect(v.Raw); ok && f.Severity > best.Severity {
			best = f
		}
	}
	if best.Kind != "" {
		best.Path = v.Path
		report(best)
	}
}

// pathChars are the bytes a path needs (with NUL, which shares charControl with other control
// bytes and is tested on its own).
var pathChars = charsIn("./\\%:")

// inspectReading judges one reading r, whose charSet is m.
func (d *pathDetector) inspectReading(r string, m charSet, pathKey bool) (Finding, bool) {
	if !m.any(pathChars|charNonASCII) && !(m.any(charControl) && strings.IndexByte(r, 0) >= 0) &&
		!(m.any(charDigit) && strings.Contains(r, "0x")) {
		return Finding{}, false
	}
	if !pathKey && plainProseChars(r, m) {
		return Finding{}, false
	}
	return d.inspectDecoded(r, pathKey)
}

// dotRun reports an occurrence of c ('.' or '?') followed by '.' or '?'.
func dotRun(r string, c byte) bool {
	for i := 0; ; {
		j := strings.IndexByte(r[i:], c)
		if j < 0 {
			return false
		}
		i += j + 1
		if i < len(r) && (r[i] == '.' || r[i] == '?') {
			return true
		}
	}
}

// plainProseChars is plainProse given the charSet of r: the classes rule out most of its cases,
// leaving a few substring searches instead of a byte-by-byte pass.
func plainProseChars(r string, m charSet) bool {
	if m.any(charNonASCII|charControl) || m.has('%') {
		return plainProse(r)
	}
	if !m.any(charSpace | charTab | charReturn | charNewline) {
		return false
	}
	if m.has('.') && dotRun(r, '.') || m.has('?') && dotRun(r, '?') {
		return false
	}
	return !m.any(charDigit) || !strings.Contains(r, "0x") && !strings.Contains(r, "0X")
}

// inspectDecoded is inspectReading past its cheap gates.
func (d *pathDetector) inspectDecoded(r string, pathKey bool) (Finding, bool) {
	dec, layers := pathDecode(r)
	find := func(sev threat.Level, score float64, why string) (Finding, bool) {
		return Finding{Kind: KindPathTraversal, Severity: sev, Evidence: why + ": " + excerpt(r, 0), Score: score}, true
	}
	if hasOverlongEscape(r) {
		return find(threat.High, 0.9, "overlong UTF-8 escape")
	}
	skel := pathSkeleton(dec)
	ups := countUps(skel)
	obfuscated := layers > 0 || strings.Contains(skel, "?.") || strings.Contains(skel, ".?") || strings.Contains(skel, "??/") || hasNonASCII(r) || cs26.in(r) ||
		strings.Count(skel, "./") >= 2 || strings.Contains(r, "\\") && strings.Contains(r, "/")
	switch {
	case ups >= 2:
		return find(threat.High, 0.95, "directory traversal")
	case ups == 1 && obfuscated:
		return find(threat.High, 0.9, "obfuscated directory traversal")
	}
	if i := strings.IndexByte(dec, 0); i >= 0 && (cs27.in(dec) || strings.Contains(dec[:i], ".")) {
		return find(threat.High, 0.85, "NUL byte in path")
	}
	if !pathKey && cs28.in(dec) {
		// Prose, not a path: file names mentioned in a sentence are not file access.
		switch {
		case ups == 1 && strings.Trim(skel, "./") == "":
			return find(threat.Low, 0.3, "parent directory")
		case ups == 1:
			return find(threat.Medium, 0.5, "parent directory")
		}
		return Finding{}, false
	}
	low := lowerASCII(skel)
	if strings.HasPrefix(dec, `\\`) && len(dec) > 2 && dec[2] != '\\' && strings.IndexByte(dec[2:], '\\') > 0 {
		return find(threat.High, 0.8, "UNC path")
	}
	if scheme := lfiScheme(low); scheme != "" {
		return find(threat.High, 0.85, scheme+" wrapper")
	}
	target, credential := sensitiveTarget(path.Clean(low))
	switch {
	case credential:
		return find(threat.High, 0.85, "credential file "+target)
	case target != "" && (ups == 1 || obfuscated):
		return find(threat.High, 0.85, "traversal to "+target)
	case target != "":
		return find(threat.Medium, 0.6, "system file "+target)
	case ups == 1 && strings.Trim(skel, "./") == "":
		return find(threat.Low, 0.3, "parent directory") // "cd .."
	case ups == 1:
		return find(threat.Medium, 0.5, "parent directory")
	}
	if pathKey && len(d.roots) > 0 && isAbsPath(low) && !d.inRoots(low) {
		return find(threat.Medium, 0.6, "absolute path outside allowed roots")
	}
	if pathKey && len(d.roots) == 0 {
		if dir := systemLocation(path.Clean(low)); dir != "" {
			// No roots configured: an agent's file tool still has no business in the OS's own
			// configuration, logs and process tables.
			return find(threat.Medium, 0.5, "system location "+dir)
		}
	}
	return Finding{}, false
}

// plainProse reports, in one pass, that r is text the rest of inspectReading cannot flag outside a
// path parameter: it contains whitespace (so only a parent-directory reference could be reported)
// and none of what could make one — no escape to decode ('%', "0x"), no non-ASCII to fold, no NUL,
// and no two adjacent '.' or '?' (countUps needs such a run, and the skeleton never creates dots).
func plainProse(r string) bool {
	space := false
	for i := 0; i < len(r); i++ {
		switch c := r[i]; c {
		case ' ', '\t', '\r', '\n':
			space = true
		case '%', 0:
			return false
		case '.', '?':
			if i+1 < len(r) && (r[i+1] == '.' || r[i+1] == '?') {
				return false
			}
		case '0':
			if i+1 < len(r) && (r[i+1] == 'x' || r[i+1] == 'X') {
				return false
			}
		default:
			if c >= 0x80 {
				return false
			}
		}
	}
	return space
}

func (d *pathDetector) inRoots(p string) bool {
	if len(p) >= 2 && p[1] == ':' {
		p = p[:2] + path.Clean("/"+p[2:])
	} else {
		p = path.Clean(p)
	}
	p += "/"
	for _, r := range d.roots {
		if strings.HasPrefix(p, r) {
			return true
		}
	}
	return false
}

func isAbsPath(p string) bool {
	return strings.HasPrefix(p, "/") || strings.HasPrefix(p, "~") ||
		len(p) >= 3 && p[1] == ':' && p[2] == '/' && (p[0] >= 'a' && p[0] <= 'z')
}

// pathKeyWords are the words isPathKey looks for, matched in one pass.
var pathKeyWords = newLitSet("path", "file", "dir", "folder", "filename")

// isPathKey reports whether a parameter name says it holds a file-system path.
func isPathKey(key string) bool {
	k := strings.ToLower(key)
	if pathKeyWords.contains(k) {
		return true
	}
	switch k {
	case "src", "dst", "source", "destination", "target", "dest", "location", "cwd":
		return true
	}
	return false
}

// pathSkeleton reduces a decoded path to its structure: backslashes become slashes, and whatever
// still looks like an escape that did not decode (%bg, %%35, a stray %), control bytes and non-ASCII
// bytes become separators — payloads put such junk exactly where a separator goes.
func pathSkeleton(s string) string {
	clean := true
	for i := 0; i < len(s) && clean; i++ {
		c := s[i]
		clean = c != '\\' && c >= 0x20 && c < 0x80 && c != '%' && !(c == '.' && i+2 < len(s) && (s[i+1] == '2' || s[i+1] == '5'))
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c < 0x20 || c >= 0x80:
			b.WriteByte('/')
		case c == '%':
			for i+1 < len(s) && s[i+1] == '%' {
				i++
			}
			if i+2 < len(s) && isAlnum(s[i+1]) && isAlnum(s[i+2]) {
				i += 2
			}
			b.WriteByte('/')
		case (c == '2' || c == '5') && i > 0 && s[i-1] == '.' && i+1 < len(s) && (s[i+1] == 'f' || s[i+1] == 'F' || s[i+1] == 'c' || s[i+1] == 'C'):
			// "..2f": the remnant of an escape whose '%' a filter removed.
			b.WriteByte('/')
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// countUps counts the ".." components of a slash-separated path. A component is a run of two or
// more dots bounded by a separator, the start or end of the value, or by what commonly ends a path
// component in payloads: ';' (Tomcat path parameters), '?', '#', NUL, a '%' left over from an escape
// that did not decode, and bytes of broken UTF-8.
func countUps(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if s[i] != '.' && s[i] != '?' {
			i++
			continue
		}
		j, dots := i, 0
		for j < len(s) && (s[j] == '.' || s[j] == '?') {
			if s[j] == '.' {
				dots++
			}
			j++
		}
		// ".." and its wildcard spellings ("?.", ".?", "??") used against Windows file APIs.
		if j-i >= 2 && (dots >= 1 || j < len(s) && s[j] == '/') && (i == 0 || upBoundary(s[i-1], true)) && (j == len(s) || upBoundary(s[j], false)) {
			n++
		}
		i = j
	}
	return n
}

func upBoundary(c byte, before bool) bool {
	switch c {
	case '/', ';', 0, '%', '{':
		return true
	case '?', '#':
		return !before
	case '=', '\'', '"', ':', '|', '(', ',', '[':
		return before
	}
	return c >= 0x80
}

func hasNonASCII(s string) bool { return firstNonASCII(s) >= 0 }

// hasOverlongEscape reports a percent-escaped lead byte that can only start an overlong (never
// valid) UTF-8 sequence: %c0, %c1, %e0%80, %f0%80, %f8, %fc. They exist only to slip a '.' or a
// '/' past a filter.
func hasOverlongEscape(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		h := strings.ToLower(s[i+1 : i+3])
		switch h {
		case "c0", "c1", "f8", "fc":
			return true
		case "e0", "f0":
			if i+5 < len(s) && s[i+3] == '%' && strings.EqualFold(s[i+4:i+6], "80") {
				return true
			}
		}
	}
	return false
}

// maxPathLayers bounds how many rounds of decoding pathDecode applies.
const maxPathLayers = 4

// pathDecode decodes s until it stops changing (at most maxPathLayers rounds) and returns the result
// with overlong UTF-8 and look-alike dots and slashes folded to ASCII, and the number of rounds
// that changed something.
func pathDecode(s string) (string, int) {
	layers := 0
	for range maxPathLayers {
		d := pathUnescapeOnce(s)
		if d == s {
			break
		}
		s = d
		layers++
	}
	f := foldPathRunes(s)
	if f != s && layers == 0 {
		layers = 1
	}
	return f, layers
}

// pathUnescapeOnce decodes %XX, %uXXXX and the 0x2e / 0x2f / 0x5c literals of s, leaving
// anything malformed as it is.
func pathUnescapeOnce(s string) string {
	if !strings.Contains(s, "%") && !strings.Contains(s, "0x") && !strings.Contains(s, "0X") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') && i+5 < len(s) && isHex(s[i+2]) && isHex(s[i+3]) && isHex(s[i+4]) && isHex(s[i+5]):
			b.WriteRune(rune(unhex(s[i+2])<<12 | unhex(s[i+3])<<8 | unhex(s[i+4])<<4 | unhex(s[i+5])))
			i += 5
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
			i += 2
		case c == '0' && i+3 < len(s) && (s[i+1] == 'x' || s[i+1] == 'X'):
			switch strings.ToLower(s[i+2 : i+4]) {
			case "2e":
				b.WriteByte('.')
				i += 3
			case "2f":
				b.WriteByte('/')
				i += 3
			case "5c":
				b.WriteByte('\\')
				i += 3
			default:
				b.WriteByte(c)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	default:
		return int(c-'A') + 10
	}
}

// foldPathRunes maps overlong UTF-8 encodings of ASCII and the Unicode look-alikes of '.', '/' and
// '\' to ASCII. Other bytes are kept as they are.
func foldPathRunes(s string) string {
	if !hasNonASCII(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			b.WriteByte(c)
			i++
			continue
		}
		// Overlong forms: a lead byte whose payload bits are all zero before the final six.
		if n, ascii, ok := overlong(s[i:]); ok {
			b.WriteByte(ascii)
			i += n
			continue
		}
		r, size := decodeRuneLoose(s[i:])
		switch r {
		case '\uff0e', '\u2024', '\ufe52', '\u3002', '\uff61':
			b.WriteByte('.')
		case '\uff0f', '\u2215', '\u2044', '\u29f8':
			b.WriteByte('/')
		case '\uff3c', '\u2216', '\u29f5', '\ufe68':
			b.WriteByte('\\')
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// overlong decodes an overlong UTF-8 encoding of an ASCII byte at the start of s.
func overlong(s string) (n int, ascii byte, ok bool) {
	cont := func(i int) bool { return i < len(s) && s[i]&0xc0 == 0x80 }
	switch {
	case (s[0] == 0xc0 || s[0] == 0xc1) && cont(1):
		return 2, (s[0]&1)<<6 | s[1]&0x3f, true
	case s[0] == 0xe0 && len(s) > 2 && s[1] == 0x80 && cont(2):
		return 3, s[2] & 0x3f, true
	case s[0] == 0xe0 && len(s) > 2 && s[1] == 0x81 && cont(2):
		return 3, 0x40 | s[2]&0x3f, true
	case s[0] == 0xf0 && len(s) > 3 && s[1] == 0x80 && s[2] == 0x80 && cont(3):
		return 4, s[3] & 0x3f, true
	case s[0] == 0xf8 && len(s) > 4 && s[1] == 0x80 && s[2] == 0x80 && s[3] == 0x80 && cont(4):
		return 5, s[4] & 0x3f, true
	case s[0] == 0xfc && len(s) > 5 && s[1] == 0x80 && s[2] == 0x80 && s[3] == 0x80 && s[4] == 0x80 && cont(5):
		return 6, s[5] & 0x3f, true
	}
	return 0, 0, false
}

// decodeRuneLoose decodes one rune, treating a broken sequence as one byte.
func decodeRuneLoose(s string) (rune, int) {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return 0, 1
	}
	return r, n
}

// lfiScheme returns the URL scheme or PHP stream wrapper that turns a parameter into a local file
// read or code execution, if s starts with one.
func lfiScheme(s string) string {
	s = strings.TrimLeft(s, " \t")
	for _, p := range [...]string{"file:", "php://", "phar://", "zip://", "expect://", "data://", "glob://", "compress.zlib://", "compress.bzip2://", "jar:", "netdoc:"} {
		if strings.HasPrefix(s, p) {
			return strings.TrimRight(p, ":/")
		}
	}
	return ""
}

// systemDirs are operating-system locations (configuration, logs, process and device tables,
// the administrator's home) that an agent's file access should not reach without explicit roots.
var systemDirs = []string{
	"/etc/", "/proc/", "/sys/", "/root/", "/boot/", "/var/log/", "/var/adm/", "/var/lib/", "/var/spool/",
	"/var/run/", "/var/mail/", "/usr/local/etc/", "/private/etc/", "/private/var/", "/library/keychains/",
	"c:/windows/", "c:/winnt/", "c:/boot.ini", "c:/inetpub/", "c:/programdata/", "c:/system32/",
	"c:/documents and settings/", "c:/users/default/", "/dev/",
}

// systemLocation returns the system directory p lies in, if any.
func systemLocation(p string) string {
	if len(p) > 2 && p[1] == ':' && p[0] >= 'a' && p[0] <= 'z' {
		p = "c" + p[1:] // every drive letter reads like C:
	}
	for _, d := range systemDirs {
		if strings.HasPrefix(p, d) || strings.TrimSuffix(d, "/") == p {
			return strings.TrimSuffix(d, "/")
		}
	}
	for _, d := range [...]string{"/apache", "/logs/", "/opt/lampp/logs", "/opt/xampp/logs", "/usr/local/apache"} {
		if strings.HasPrefix(p, d) && (strings.Contains(p, "log") || strings.Contains(p, "conf")) {
			return "server logs and configuration"
		}
	}
	return ""
}

type sensitiveFile struct {
	suffix     string // matched against the end of a component-aligned path
	credential bool
}

// sensitiveFiles are well-known targets of file inclusion. Credential files get high severity on
// their own; the others are suspicious (medium) and high when reached by traversal.
var sensitiveFiles = []sensitiveFile{
	{"etc/shadow", true}, {"etc/gshadow", true}, {"etc/master.passwd", true}, {"etc/sudoers", true},
	{".ssh/id_rsa", true}, {".ssh/id_dsa", true}, {".ssh/id_ecdsa", true}, {".ssh/id_ed25519", true},
	{".ssh/authorized_keys", true}, {".aws/credentials", true}, {".docker/config.json", true},
	{".kube/config", true}, {".netrc", true}, {".pgpass", true}, {".git-credentials", true},
	{"proc/self/environ", true}, {"system32/config/sam", true}, {"repair/sam", true},
	{"system32/config/system", true}, {".htpasswd", true}, {"wp-config.php", true},
	{".bash_history", true}, {"unattend.xml", true}, {"sysprep.inf", true},
	{"etc/passwd", false}, {"etc/group", false}, {"etc/hosts", false}, {"etc/issue", false},
	{"etc/hostname", false}, {"etc/crontab", false}, {"etc/fstab", false}, {"etc/os-release", false},
	{"proc/self/cmdline", false}, {"proc/self/status", false}, {"proc/self/maps", false},
	{"proc/version", false}, {"boot.ini", false}, {"win.ini", false}, {"system.ini", false},
	{"web.config", false}, {".htaccess", false}, {".env", false}, {".git/config", false},
	{"httpd.conf", false}, {"php.ini", false}, {"my.cnf", false},
}

// sensitiveTarget returns the sensitive file s names, if any. Path components must align: "passwd"
// alone or "my_etc/passwd" do not match "etc/passwd". /proc/<pid>/ and /proc/self/fd/ forms are
// matched too.
func sensitiveTarget(s string) (string, bool) {
	if i := cs29.index(s); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '?'); i > strings.LastIndexByte(s, '/') {
		s = s[:i] // a query string
	}
	s = strings.TrimRight(s, "/ ")
	for _, f := range sensitiveFiles {
		if !strings.HasSuffix(s, f.suffix) {
			continue
		}
		if i := len(s) - len(f.suffix); i == 0 || s[i-1] == '/' || s[i-1] == '~' || s[i-1] == ':' || f.suffix[0] == '.' {
			return f.suffix, f.credential
		}
	}
	if i := strings.Index(s, "proc/"); i >= 0 && (i == 0 || s[i-1] == '/') {
		rest := s[i+5:]
		if j := strings.IndexByte(rest, '/'); j > 0 {
			switch file := rest[j+1:]; {
			case file == "environ":
				return "proc/*/environ", true
			case strings.HasPrefix(file, "fd/"), file == "cmdline", file == "maps", file == "mem":
				return "proc/*/" + file, false
			}
		}
	}
	return "", false
}
