package inspect

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Finding kinds of the exfiltration detector (stable: policies name them).
const (
	KindExfilImage    = "exfiltration.markdown_image" // ![..](https://outside/?q=<data>): leaks when rendered
	KindExfilLink     = "exfiltration.markdown_link"  // [..](https://outside/?q=<data>): leaks when clicked
	KindExfilURL      = "exfiltration.url_data"       // a URL to an outside host carrying data-looking query values
	KindExfilBlob     = "exfiltration.encoded_blob"   // a long base64/hex blob in the arguments
	KindExfilLarge    = "exfiltration.large_payload"  // arguments larger than Config.LargePayload
	KindExfilCode     = "exfiltration.code"           // code that reads local secrets and sends them out
	KindMaliciousCode = "malicious_code"              // keyloggers, screen grabbers, disk wipers, miners, fork bombs
)

// exfilDetector finds data on its way out: URLs that carry data to outside hosts (above all
// markdown images, which a chat client fetches without a click), long encoded blobs, oversized
// arguments, and code planted to read secrets and send them.
type exfilDetector struct{}

var (
	_ Detector     = exfilDetector{}
	_ CallDetector = exfilDetector{}
)

func (exfilDetector) Name() string { return "exfil" }

// InspectCall flags unusually large arguments.
func (exfilDetector) InspectCall(c *Call, report func(Finding)) {
	limit := c.Config.LargePayload
	if c.Direction == Request && limit > 0 && c.Size > limit {
		report(Finding{Kind: KindExfilLarge, Severity: threat.Medium, Path: "$",
			Evidence: fmt.Sprintf("%d bytes of arguments (threshold %d)", c.Size, limit), Score: 0.5})
	}
}

func (d exfilDetector) Inspect(c *Call, v *Value, report func(Finding)) {
	s := v.Raw
	if len(s) < 12 {
		return
	}
	if strings.Contains(s, "://") {
		d.urls(c, v, report)
	}
	if c.Direction == Request && len(s) >= 1024 && hasBlob(s, 1024) {
		if n, at := longestBlob(s); n >= 1024 {
			report(Finding{Kind: KindExfilBlob, Severity: threat.Low, Path: v.Path,
				Evidence: fmt.Sprintf("%d-character encoded blob: %s", n, clipText(s[at:], 24)), Score: 0.3})
		}
	}
	d.code(c, v, report)
}

// urls examines every absolute http(s) URL in the raw value.
func (d exfilDetector) urls(c *Call, v *Value, report func(Finding)) {
	s := v.Raw
	for off := 0; off < len(s); {
		i := strings.Index(s[off:], "://")
		if i < 0 {
			return
		}
		i += off
		start := i
		for start > 0 && isSchemeChar(s[start-1]) {
			start--
		}
		end := i + 3
		for end < len(s) && !isURLStop(s[end]) {
			end++
		}
		off = end
		scheme := strings.ToLower(s[start:i])
		if scheme != "http" && scheme != "https" {
			continue
		}
		raw := s[start:end]
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			continue
		}
		if allowedHost(c.Config.AllowedHosts, u.Hostname()) {
			continue
		}
		ctx := urlContext(s, start)
		data, why := dataInURL(u)
		switch {
		case ctx == ctxImage && data:
			sev := threat.High
			if c.Direction == Request {
				sev = threat.Medium
			}
			report(Finding{Kind: KindExfilImage, Severity: sev, Path: v.Path, Evidence: clipText(u.Host+u.Path, 60) + " " + why, Score: 0.85})
		case ctx == ctxImage && c.Direction != Request && (u.RawQuery != "" || strings.Contains(u.Path, "{")):
			// An image URL with any parameters inside a tool result is a channel waiting for data.
			report(Finding{Kind: KindExfilImage, Severity: threat.Low, Path: v.Path, Evidence: clipText(u.Host+u.Path, 60), Score: 0.3})
		case ctx == ctxLink && data:
			report(Finding{Kind: KindExfilLink, Severity: threat.Medium, Path: v.Path, Evidence: clipText(u.Host+u.Path, 60) + " " + why, Score: 0.6})
		case data:
			report(Finding{Kind: KindExfilURL, Severity: threat.Medium, Path: v.Path, Evidence: clipText(u.Host+u.Path, 60) + " " + why, Score: 0.5})
		case encodedPath(u):
			report(Finding{Kind: KindExfilURL, Severity: threat.Low, Path: v.Path, Evidence: clipText(u.Host+u.Path, 60) + " (long encoded path segment)", Score: 0.3})
		}
	}
}

func isSchemeChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '.' || c == '-'
}

func isURLStop(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '"', '\'', '<', '>', ')', ']', '`', '|', '\\':
		return true
	}
	return false
}

type urlCtx uint8

const (
	ctxBare urlCtx = iota
	ctxImage
	ctxLink
)

// urlContext says whether the URL starting at i is the target of a markdown image, a markdown
// link or an HTML img/src attribute.
func urlContext(s string, i int) urlCtx {
	before := s[max(0, i-400):i]
	if strings.HasSuffix(before, "](") || strings.HasSuffix(before, "]( ") || strings.HasSuffix(before, "]: ") {
		// Find the matching '[' and see whether '!' precedes it.
		if j := strings.LastIndexByte(before[:len(before)-2], '['); j >= 0 {
			if j > 0 && before[j-1] == '!' {
				return ctxImage
			}
			return ctxLink
		}
		return ctxLink
	}
	lb := strings.ToLower(before[max(0, len(before)-40):])
	if strings.HasSuffix(lb, `src="`) || strings.HasSuffix(lb, `src='`) || strings.HasSuffix(lb, "src=") ||
		strings.HasSuffix(lb, "url(") || strings.HasSuffix(lb, `url("`) {
		return ctxImage
	}
	return ctxBare
}

// allowedHost reports whether host is configured as allowed: an exact name, or ".example.com"
// for the domain and its subdomains.
func allowedHost(allowed []string, host string) bool {
	host = strings.ToLower(host)
	for _, a := range allowed {
		a = strings.ToLower(a)
		if strings.HasPrefix(a, ".") {
			if host == a[1:] || strings.HasSuffix(host, a) {
				return true
			}
		} else if host == a {
			return true
		}
	}
	return false
}

// exfilParams are query parameter names that announce carried data.
var exfilParams = map[string]bool{
	"data": true, "d": true, "q": false, "secret": true, "token": false, "key": false, "password": true, "pwd": true,
	"msg": true, "message": true, "content": true, "conversation": true, "history": true, "chat": true, "leak": true,
	"exfil": true, "payload": true, "info": true, "creds": true, "credentials": true, "cookie": true, "cookies": true,
	"session": true, "memory": true, "context": true, "prompt": true, "summary": true, "email": false, "p": true,
}

var placeholder = lazyRegexp(`\{\{?[A-Za-z_ ]{2,40}\}?\}|\$\{?[A-Z][A-Z0-9_]{2,}\}?|\[[A-Z][A-Z_ ]{3,}\]|<[A-Z][A-Z_ ]{3,}>|\b[A-Z]{3,}_[A-Z_]{3,}\b`)

// dataInURL decides whether a URL carries data: a long high-entropy or encoded query value, a
// parameter named for data with a substantial value, a template placeholder to be filled with
// data, or a long encoded path segment.
func dataInURL(u *url.URL) (bool, string) {
	if u.RawQuery != "" {
		if placeholder.MatchString(u.RawQuery) {
			return true, "(query has a placeholder for data)"
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			if len(u.RawQuery) >= 64 {
				return true, "(long unparsable query)"
			}
		}
		for k, vals := range q {
			for _, val := range vals {
				named := exfilParams[strings.ToLower(k)]
				switch {
				case len(val) >= 48 && looksEncoded(val):
					return true, fmt.Sprintf("(query %q carries a %d-character encoded value)", clipText(k, 20), len(val))
				case named && len(val) >= 16 && (looksEncoded(val) || strings.Count(val, " ") >= 3):
					return true, fmt.Sprintf("(query %q carries %d characters of data)", clipText(k, 20), len(val))
				case len(val) >= 200:
					return true, fmt.Sprintf("(query %q carries %d characters)", clipText(k, 20), len(val))
				}
			}
		}
	}
	if placeholder.MatchString(u.Path) {
		return true, "(path has a placeholder for data)"
	}
	return false, ""
}

// encodedPath reports a long encoded path segment: weak evidence, since CDNs and object stores
// put long identifiers in paths.
func encodedPath(u *url.URL) bool {
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) >= 64 && looksEncoded(seg) {
			return true
		}
	}
	return false
}

// looksEncoded reports whether s reads like base64, hex or another machine encoding rather than
// words: long, few separators, mixed character classes.
func looksEncoded(s string) bool {
	if len(s) < 16 {
		return false
	}
	var upper, lower, digit, other, space int
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			upper++
		case c >= 'a' && c <= 'z':
			lower++
		case c >= '0' && c <= '9':
			digit++
		case c == ' ':
			space++
		default:
			other++
		}
	}
	if space*20 > len(s) {
		return false // prose
	}
	if isHexString(s) {
		return true
	}
	classes := 0
	for _, n := range []int{upper, lower, digit} {
		if n*10 >= len(s) {
			classes++
		}
	}
	return classes >= 2 && upper+lower+digit >= len(s)*8/10
}

// longestBlob returns the length and start of the longest run of base64/hex characters in s.
func longestBlob(s string) (int, int) {
	best, at, run := 0, 0, 0
	for i := 0; i < len(s); i++ {
		if isB64Char(s[i]) || s[i] == '=' {
			run++
			if run > best {
				best, at = run, i-run+1
			}
		} else {
			run = 0
		}
	}
	return best, at
}

// Code that moves local secrets to the network: a source of sensitive data and a network sink in
// the same value. Looked for in the normalised text so spacing and case tricks do not matter.
var (
	codeSink   = lazyRegexp(`requests\.(?:post|get|put)\s*\(|urllib\.request|urlopen\s*\(|http\.client|httpx\.|socket\.(?:socket|connect|create_connection)|\bcurl\s+-|\bwget\s+|\bfetch\s*\(|xmlhttprequest|navigator\.sendbeacon|smtplib|ftplib|paramiko|\bscp\s+\S+\s+\S+@|\bnc\s+-|invoke-webrequest|net\.webclient`)
	codeSource = lazyRegexp(`os\.environ|getenv\s*\(|process\.env|document\.cookie|cookiejar|\bcookies\b|/etc/passwd|/etc/shadow|\.ssh/|id_rsa|\.aws/credentials|\.bash_history|keychain|login data|browser_history|clipboard|pyperclip|imagegrab|screenshot|pyautogui\.screenshot|getasynckeystate|pynput|keyboard\.on_press|keylog`)
	codeHarm   = lazyRegexp(`pynput\.keyboard|keyboard\.on_press|getasynckeystate|setwindowshookex|\bkeylog|imagegrab\.grab|\bdd\s+if=/dev/(?:zero|random|urandom)\s+of=/dev/|\brm\s+-(?:rf|fr)\s+(?:/|~|\*)|mkfs\.|:\(\)\s*\{\s*:\|:&\s*\};:|xmrig|minerd|stratum\+tcp|cryptonight|cryptomine|while\s+true:\s*os\.fork|shutil\.rmtree\(\s*["']/|format\s+c:|vssadmin\s+delete\s+shadows|\.encrypt\(.*for\s+\w+\s+in\s+os\.walk|os\.walk\(.*\.encrypt|os\.remove\(\s*["']/(?:lib|usr|etc|bin|boot|sbin)|systemctl\s+(?:stop|disable|mask)\s|/etc/init\.d/|rc\.local|\bcrontab\s+-|>>\s*~?/?\S*\.bashrc|iptables\s+-f|kill\s+-9\s+-1|chmod\s+-?r?\s*777\s+/`)
	// Download and execute: something fetched from the network is made executable or run.
	codeFetch = lazyRegexp(`\bcurl\s|\bwget\b|requests\.get\s*\(|urlopen\s*\(|urlretrieve\s*\(|invoke-webrequest|downloadstring|downloadfile`)
	codeExec  = lazyRegexp(`chmod\s+\+x|\|\s*(?:ba|z)?sh\b|subprocess\.|os\.system\s*\(|\bexec\s*\(|\beval\s*\(|os\.popen|iex\b|invoke-expression|start-process`)
	// Host reconnaissance whose result goes to the network.
	codeCollect = lazyRegexp(`psutil\.|platform\.uname|usb\.core|socket\.gethostname|getpass\.getuser|os\.listdir|glob\.glob|subprocess\.check_output|os\.popen|scapy|sniff\(|wifi|bluetooth`)
)

// hasCall reports a call-like parenthesis, "name(", as opposed to prose's " (".
func hasCall(s string) bool {
	for i := 1; i < len(s); i++ {
		j := strings.IndexByte(s[i:], '(')
		if j < 0 {
			return false
		}
		i += j
		if isWordChar(s[i-1]) {
			return true
		}
	}
	return false
}

// exfilCodeChars are cs24 and the '(' of hasCall and '-' of hasFlag.
var exfilCodeChars = charsIn("|`$=;>(-")

// hasFlag reports a command-line flag: " -x" or " --x".
func hasFlag(s string) bool {
	// Search for the '-' (rare in prose) rather than " -": spaces are everywhere, and each one
	// would be a false start of the two-byte search.
	for i := 1; i+1 < len(s); i++ {
		j := strings.IndexByte(s[i:len(s)-1], '-')
		if j < 0 {
			return false
		}
		i += j
		if s[i-1] == ' ' && (s[i+1] >= 'a' && s[i+1] <= 'z' || s[i+1] == '-') {
			return true
		}
	}
	return false
}

// Literals one of which every match of the corresponding regexp contains. Go's regexp engine has
// no DFA, so the regexps run only on text that passes these cheap substring tests.
var (
	harmLits = newLitSet("pynput", "on_press", "getasynckeystate", "setwindowshookex", "keylog", "imagegrab", "dd if",
		"rm -", "mkfs.", ":()", "xmrig", "minerd", "stratum+tcp", "cryptonight", "cryptomine", "os.fork", "rmtree",
		"format c:", "vssadmin", ".encrypt(", "os.remove", "systemctl", "/etc/init.d/", "rc.local", "crontab", ".bashrc",
		"iptables", "kill -9", "chmod")
	sinkLits = newLitSet("requests.", "urllib", "urlopen", "http.client", "httpx.", "socket.", "curl", "wget", "fetch",
		"xmlhttprequest", "sendbeacon", "smtplib", "ftplib", "paramiko", "scp ", "nc -", "invoke-webrequest", "webclient")
)

// The code patterns are alternations of dozens of branches, some with ".*": Go's regexp runs
// them in linear time, but at microseconds per byte, and on a long string of noise (random text,
// base64) their literal pre-filters match by chance, so a megabyte took seconds. On a string
// longer than codeLong each pattern is therefore matched only within codeReach bytes of one of
// its literals (windows merged, so each byte is scanned at most once per pattern): the work
// follows the literals present, not the string's length. A match wider than the window (a ".*"
// spanning more than codeReach bytes of one line) is missed in such strings; shorter strings are
// matched whole, as before.
const (
	codeLong  = 64 << 10
	codeReach = 2 << 10
)

var (
	fetchLits   = newLitSet("curl", "wget", "requests.get", "urlopen", "urlretrieve", "invoke-webrequest", "downloadstring", "downloadfile")
	execLits    = newLitSet("chmod", "sh", "subprocess.", "os.system", "exec", "eval", "os.popen", "iex", "invoke-expression", "start-process")
	sourceLits  = newLitSet("os.environ", "getenv", "process.env", "document.cookie", "cookiejar", "cookies", "/etc/passwd", "/etc/shadow", ".ssh/", "id_rsa", ".aws/credentials", ".bash_history", "keychain", "login data", "browser_history", "clipboard", "pyperclip", "imagegrab", "screenshot", "getasynckeystate", "pynput", "keyboard.on_press", "keylog")
	collectLits = newLitSet("psutil.", "platform.uname", "usb.core", "socket.gethostname", "getpass.getuser", "os.listdir", "glob.glob", "subprocess.check_output", "os.popen", "scapy", "sniff(", "wifi", "bluetooth")
)

// findNear is re.FindStringIndex(s), bounded on long strings to windows around lits (every
// match of re contains one of lits).
func findNear(re *lazyRE, lits *litSet, s string) []int {
	if len(s) <= codeLong {
		return re.FindStringIndex(s)
	}
	for pos := 0; pos < len(s); {
		end, lit, ok := lits.find(s[pos:])
		if !ok {
			return nil
		}
		hit := pos + end - len(lit)
		lo, hi := max(pos, hit-codeReach), min(len(s), pos+end+codeReach)
		// Merge the literals that follow within reach into one window.
		for hi < len(s) {
			e, l, ok := lits.find(s[hi-codeReach : min(len(s), hi+codeReach)])
			if !ok {
				break
			}
			next := hi - codeReach + e - len(l)
			if next < hi-codeReach {
				break
			}
			hi = min(len(s), hi-codeReach+e+codeReach)
		}
		if loc := re.FindStringIndex(s[lo:hi]); loc != nil {
			return []int{lo + loc[0], lo + loc[1]}
		}
		pos = hi
	}
	return nil
}

func (exfilDetector) code(c *Call, v *Value, report func(Finding)) {
	s := v.Norm
	// Code and shell commands carry calls, pipes, assignments or flags; prose rarely does.
	// Each of the three needs a byte of exfilCodeChars: most prose is ruled out without a scan.
	if len(s) < 20 || !v.readingChars(s).any(exfilCodeChars) || !cs24.in(s) && !hasCall(s) && !hasFlag(s) {
		return
	}
	if harmLits.contains(s) {
		if loc := findNear(codeHarm, harmLits, s); loc != nil {
			report(Finding{Kind: KindMaliciousCode, Severity: threat.Medium, Path: v.Path, Evidence: evidence(s, loc[0], loc[1]), Score: 0.6})
		}
	}
	if !sinkLits.contains(s) {
		return
	}
	if f := findNear(codeFetch, fetchLits, s); f != nil {
		if x := findNear(codeExec, execLits, s); x != nil {
			report(Finding{Kind: KindMaliciousCode, Severity: threat.Medium, Path: v.Path,
				Evidence: "download and execute: " + evidence(s, f[0], f[1]) + " … " + evidence(s, x[0], x[1]), Score: 0.6})
		}
	}
	if sink := findNear(codeSink, sinkLits, s); sink != nil {
		src := findNear(codeSource, sourceLits, s)
		if src == nil {
			src = findNear(codeCollect, collectLits, s)
		}
		if src != nil {
			report(Finding{Kind: KindExfilCode, Severity: threat.Medium, Path: v.Path,
				Evidence: evidence(s, src[0], src[1]) + " … " + evidence(s, sink[0], sink[1]), Score: 0.6})
		}
	}
}
