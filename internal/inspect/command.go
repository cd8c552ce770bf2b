package inspect

import (
	"strings"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// commandDetector finds OS command injection. What counts depends on where the value goes:
//
//   - In an ordinary argument (a host name, a file name, a search term) shell syntax has no
//     business at all: a separator (; | || & && newline) or a substitution (`...`, $(...)) followed
//     by a command is high severity.
//   - In the command of a shell-like tool (DetectorConfig.ShellTools, or a parameter named command,
//     cmd, script, ...) chaining is how people use a shell, so plain chains are low; what is high
//     there is what no task needs: reverse shells (/dev/tcp, nc -e, mkfifo), download-and-execute
//     (curl ... | sh), ${IFS} and other filter-evasion spellings, Shellshock.
//
// Backticks in code snippets (JavaScript template literals, Markdown) are not substitutions unless
// a command sits inside them.
type commandDetector struct {
	shell *toolMatcher
}

var _ Detector = commandDetector{}

// newCommandDetector returns a command detector that treats tools matching the path.Match
// patterns shellTools as shell-like.
func newCommandDetector(shellTools []string) commandDetector {
	m := newToolMatcher(shellTools)
	return commandDetector{shell: &m}
}

func (commandDetector) Name() string { return "command" }

// cmdBadRule is a payload that is dangerous in any parameter, shell tool or not. The regexp runs
// only when one of the hints (plain substrings) occurs, which keeps ordinary text cheap.
type cmdBadRule struct {
	hints []string
	re    *lazyRE // nil: a hint alone is proof
	what  string
}

var cmdBadRules = []cmdBadRule{
	{[]string{"/dev/tcp/", "/dev/udp/"}, nil, "reverse shell via /dev/tcp"},
	{[]string{"${ifs}", "$ifs"}, lazyRegexp(`\$\{ifs\}|\$ifs\b`), "IFS filter evasion"},
	{[]string{"() {", "(){"}, lazyRegexp(`\(\)\s*\{\s*:?\s*;\s*\}\s*;`), "Shellshock function definition"},
	{[]string{"nc ", "ncat", "netcat", "nc.exe"}, lazyRegexp(`\bn(?:et)?cat\b[^\n|;&]*\s-[a-z]*[ec]\s|\bnc(?:\.exe)?\s[^\n|;&]*\s-[a-z]*[ec]\s`), "netcat with -e"},
	{[]string{"mkfifo"}, lazyRegexp(`\bmkfifo\b.*\b(?:nc|sh)\b`), "named-pipe reverse shell"},
	{[]string{"curl", "wget"}, lazyRegexp(`\b(?:curl|wget)\b[^|;&\n]*\|\s*(?:ba|z)?sh\b`), "download piped to a shell"},
	{[]string{"base64"}, lazyRegexp(`\bbase64\s+(?:-d|--decode)\b[^|;&\n]*\|\s*(?:ba|z)?sh\b`), "decoded payload piped to a shell"},
	{[]string{"bash -i", "sh -i"}, lazyRegexp(`\b(?:ba)?sh\s+-i\b`), "interactive shell"},
	{[]string{"<!--"}, lazyRegexp(`<!--\s*#\s*exec\b`), "server-side include exec"},
	{[]string{"powershell"}, lazyRegexp(`\bpowershell(?:\.exe)?\s+[^\n]*-(?:enc|encodedcommand|e)\s`), "encoded PowerShell"},
	{[]string{"rm -"}, lazyRegexp(`\brm\s+-[a-z]*r[a-z]*f?\s+/(?:\s|$|\*)`), "recursive delete of /"},
	{[]string{"socat"}, lazyRegexp(`\bsocat\b[^\n]*exec:`), "socat exec"},
	{[]string{"${@", "{$_get", "{$_post", "{$_request", "{$_server", "{$_cookie"}, nil, "PHP code injection"},
	{[]string{"phpinfo(", "phpversion("}, nil, "PHP code injection"},
	{[]string{"__class__", "__subclasses__", "__globals__", "__builtins__", "__import__", "__mro__"}, nil, "template/code injection via Python internals"},
}

// cmdTemplateProbe matches the arithmetic probes of server-side template injection: {{7*7}},
// ${7*7}, <%= 7*7 %>, #{7*7}.
var cmdTemplateProbe = lazyRegexp(`(?:\{\{|\$\{|<%=|#\{)\s*\d+\s*[*+]\s*\d+\s*(?:\}\}|\}|%>)`)

// cmdCodeSink matches code-execution calls in interpreted languages; cmdSinkHints guard it.
var (
	cmdCodeSink  = lazyRegexp(`\b(?:system|exec|shell_exec|passthru|popen|proc_open|eval|assert|os\.system|subprocess\.\w+|runtime\.getruntime\(\)\.exec)\s*\(\s*['"]`)
	cmdSinkHints = []string{"system", "exec", "passthru", "popen", "proc_open", "eval", "assert", "subprocess"}
)

// cmdBadWord reports the command words some cmdBadRules hint at.
func cmdBadWord(w string) bool {
	switch w {
	case "curl", "wget", "base64", "bash", "sh", "nc", "ncat", "netcat", "mkfifo", "powershell", "socat", "rm", "phpinfo", "phpversion":
		return true
	}
	return false
}

// Byte classes the command detector's steps need: cmdChars for any of them, cmdSeparators for
// cmdChained, cmdTemplateChars for the template probe, cmdMarkChars for the marker substrings of
// cmdBadPossible.
var (
	cmdChars         = charsIn(";|&`$\n\r<() \\{")
	cmdSeparators    = charsIn(";\n\r`&|$\\{")
	cmdTemplateChars = charsIn("{%")
	cmdMarkChars     = charsIn("/${(<_")
)

// Byte classes of cmdBadPossible's word scan: a word starts at a-z and continues over a-z, 0-9.
const (
	cmdWordLetter uint8 = 1 + iota
	cmdWordDigit
)

var cmdWordClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = cmdWordLetter
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = cmdWordDigit
	}
	return t
}()

// cmdBadPossible is the cheap precondition of cmdBad: one of the marker substrings, or a command
// word some rule hints at.
func cmdBadPossible(low string, m charSet) bool {
	if m.any(cmdMarkChars) && (strings.Contains(low, "/dev/") || strings.Contains(low, "${") || strings.Contains(low, "$ifs") || strings.Contains(low, "{$") ||
		strings.Contains(low, "()") || strings.Contains(low, "<!--") || strings.Contains(low, "__")) {
		return true
	}
	for i := 0; i < len(low); {
		if cmdWordClass[low[i]] != cmdWordLetter {
			i++
			continue
		}
		j := i
		for j < len(low) && cmdWordClass[low[j]] != 0 {
			j++
		}
		if j-i <= 10 && cmdBadFilter.has(low[i:j]) && cmdBadWord(low[i:j]) {
			return true
		}
		i = j
	}
	return false
}

// cmdBadWords are the words of cmdBadWord; cmdBadFilter, a bitmap over their lexKey, rules most
// other words out with one probe.
const cmdBadWords = "curl wget base64 bash sh nc ncat netcat mkfifo powershell socat rm phpinfo phpversion"

var cmdBadFilter = func() *wordFilter {
	var f wordFilter
	for _, w := range strings.Fields(cmdBadWords) {
		f.add(w)
	}
	return &f
}()

// cmdBad reports the first always-dangerous payload in low.
func cmdBad(low string, m charSet) (int, string, bool) {
	if !cmdBadPossible(low, m) {
		return 0, "", false
	}
	for i := range cmdBadRules {
		r := &cmdBadRules[i]
		for _, h := range r.hints {
			at := strings.Index(low, h)
			if at < 0 {
				continue
			}
			if r.re == nil {
				return at, r.what, true
			}
			if loc := r.re.FindStringIndex(low); loc != nil {
				return loc[0], r.what, true
			}
			break
		}
	}
	return 0, "", false
}

func containsAny(s string, subs []string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

// cmdStrong are commands whose name is not an English word: seeing one after a separator is proof.
var cmdStrong = map[string]bool{
	"whoami": true, "uname": true, "ifconfig": true, "ipconfig": true, "netstat": true, "systeminfo": true,
	"nslookup": true, "curl": true, "wget": true, "nc": true, "ncat": true, "netcat": true, "bash": true,
	"sh": true, "zsh": true, "ksh": true, "powershell": true, "pwsh": true, "cmd": true, "cmd.exe": true,
	"certutil": true, "bitsadmin": true, "mkfifo": true, "telnet": true, "tftp": true, "chmod": true,
	"chown": true, "rm": true, "phpinfo": true, "id": true, "pwd": true, "ls": true, "ps": true,
	"printenv": true, "hostname": true, "base64": true, "python": true, "python3": true, "perl": true,
	"ruby": true, "php": true, "sudo": true, "crontab": true, "killall": true, "reboot": true,
	"socat": true, "xterm": true, "wmic": true, "net.exe": true, "reg": true, "taskkill": true, "tasklist": true,
	"useradd": true, "usermod": true, "traceroute": true, "tracert": true, "nmap": true, "dig": true,
	"scp": true, "ssh": true, "env": true, "uname -a": true, "getent": true, "lsb_release": true, "ver": true,
	"netsh": true, "sysinfo": true, "awk": true, "sed": true, "xargs": true, "chattr": true, "dd": true, "gcc": true,
}

// cmdAlone are reconnaissance commands that are never a legitimate value of an ordinary argument
// on their own.
var cmdAlone = map[string]bool{
	"whoami": true, "ifconfig": true, "ipconfig": true, "netstat": true, "systeminfo": true, "sysinfo": true,
	"uname": true, "uname -a": true, "phpinfo()": true, "phpinfo();": true, "id;": true, "whoami;": true,
}

// cmdRecon are commands that, chained onto a shell tool's command, look like an intruder rather
// than a task.
var cmdRecon = map[string]bool{
	"whoami": true, "id": true, "uname": true, "ifconfig": true, "ipconfig": true, "netstat": true,
	"systeminfo": true, "curl": true, "wget": true, "nc": true, "ncat": true, "netcat": true, "nslookup": true,
	"certutil": true, "bitsadmin": true, "telnet": true, "tftp": true, "net": true, "netsh": true, "reg": true,
	"wmic": true, "useradd": true, "usermod": true, "crontab": true, "chmod": true, "printenv": true, "env": true,
	"nmap": true, "socat": true, "sudo": true, "base64": true,
}

// cmdWeak are commands that are also English words: they count only with an argument that looks
// like one (a flag, a path, a number).
var cmdWeak = map[string]bool{
	"cat": true, "type": true, "dir": true, "echo": true, "sleep": true, "ping": true, "find": true,
	"head": true, "tail": true, "more": true, "less": true, "kill": true, "net": true, "host": true,
	"touch": true, "whoami": true, "grep": true, "which": true, "set": true, "export": true, "shutdown": true,
	"mail": true, "nohup": true, "timeout": true, "sort": true, "cut": true, "exit": true,
}

func (d commandDetector) Inspect(c *Call, v *Value, report func(Finding)) {
	if c.Direction != Request {
		return
	}
	if c.shellBy != d.shell {
		c.shellBy, c.shellTool = d.shell, d.shell.match(c.Tool)
	}
	shellCtx := c.shellTool || v.keyIs(factCommandKey, isCommandKey)
	codeCtx := v.keyIs(factCodeKey, isCodeKey)
	var best Finding
	consider := func(f Finding) {
		if f.Severity > best.Severity || f.Severity == best.Severity && f.Score > best.Score {
			best = f
		}
	}
	foldedReadings(v, func(r string) bool {
		if !shellCtx && !codeCtx && len(r) < 24 {
			if t := strings.Trim(strings.TrimSpace(strings.ToLower(r)), `'" `); cmdAlone[t] {
				consider(Finding{Severity: threat.Medium, Score: 0.5, Evidence: "command name as argument: " + excerpt(r, 0)})
			}
		}
		m := v.readingChars(r)
		evasion := !codeCtx && cmdEvasionPossible(r, m)
		if !m.any(cmdChars) && !evasion {
			return true
		}
		if len(r) > 8192 {
			// lowerASCII keeps lengths, so cutting r first is cutting low; m must then describe
			// what is left.
			r = r[:8192]
			m = charsOf(r)
		}
		low := lowerASCII(r)
		if at, what, ok := cmdBad(low, m); ok {
			consider(Finding{Severity: threat.High, Score: 0.95, Evidence: what + ": " + excerpt(low, at)})
			return false
		}
		if evasion {
			if at, what, sev, ok := cmdEvasion(low, m, shellCtx); ok {
				consider(Finding{Severity: sev, Score: 0.9, Evidence: what + ": " + excerpt(low, at)})
				return false
			}
		}
		if !shellCtx && !codeCtx && m.has('(') && containsAny(low, cmdSinkHints) {
			if loc := cmdCodeSink.FindStringIndex(low); loc != nil {
				consider(Finding{Severity: threat.High, Score: 0.8, Evidence: "code execution call: " + excerpt(low, loc[0])})
				return false
			}
		}
		if at, cmd, ok := cmdChained(low, m, codeCtx); ok {
			if shellCtx {
				sev := threat.Low
				if cmdRecon[cmd] {
					sev = threat.Medium // chaining reconnaissance or network tools onto a command
				}
				consider(Finding{Severity: sev, Score: 0.4, Evidence: "chained command " + cmd + ": " + excerpt(low, at)})
			} else {
				consider(Finding{Severity: threat.High, Score: 0.85, Evidence: "shell command " + cmd + " in argument: " + excerpt(low, at)})
				return false
			}
		}
		if !shellCtx && !codeCtx && m.any(cmdTemplateChars) {
			if loc := cmdTemplateProbe.FindStringIndex(low); loc != nil {
				consider(Finding{Severity: threat.Medium, Score: 0.5, Evidence: "template injection probe: " + excerpt(low, loc[0])})
			}
		}
		if !shellCtx && !codeCtx {
			if cmd, ok := cmdBare(low); ok {
				consider(Finding{Severity: threat.Medium, Score: 0.5, Evidence: "command line " + cmd + " in argument: " + excerpt(low, 0)})
			}
		}
		return true
	})
	if best.Score > 0 {
		best.Kind, best.Path = KindCommandInjection, v.Path
		report(best)
	}
}

// cmdChained finds a command introduced by a shell separator or substitution. At the start of the
// value a command is only counted when a separator or substitution follows it too, so that a value
// which merely is a word ("id", "ls") is not an injection.
func cmdChained(s string, m charSet, codeCtx bool) (int, string, bool) {
	if !m.any(cmdSeparators) {
		return 0, "", false
	}
	n := 0
	for i := 0; i < len(s) && n < 32; i++ {
		var sep string
		switch c := s[i]; {
		case c == ';' || c == '\n' || c == '\r' || c == '`':
			sep = s[i : i+1]
		case c == '&' || c == '|':
			sep = s[i : i+1]
			if i+1 < len(s) && s[i+1] == c {
				sep = s[i : i+2]
			}
		case c == '$' && i+1 < len(s) && s[i+1] == '(':
			sep = "$("
		case c == '\\' && i+1 < len(s) && s[i+1] == 'n':
			sep = `\n` // a newline escape left in the text
		case c == '{' && i+1 < len(s) && s[i+1] == '$':
			sep = "{$"
			if i+2 < len(s) && s[i+2] == '{' {
				sep = "{${"
			}
		default:
			continue
		}
		n++
		start := i
		j := i + len(sep)
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		for _, p := range [...]string{"/usr/bin/", "/usr/sbin/", "usr/bin/", "/bin/", "/sbin/"} {
			if strings.HasPrefix(s[j:], p) {
				j += len(p)
				break
			}
		}
		k := j
		if k >= len(s) || s[k] < 'a' || s[k] > 'z' {
			i += len(sep) - 1
			continue
		}
		for k < len(s) && (s[k] >= 'a' && s[k] <= 'z' || s[k] >= '0' && s[k] <= '9' || s[k] == '_' || s[k] == '.' || s[k] == '-') {
			k++
		}
		name, rest := s[j:k], s[k:]
		i += len(sep) - 1
		if (sep == "`" || sep == "$(") && codeCtx {
			continue // template literals and $(...) in code are code
		}
		if sep == "`" && !strings.Contains(rest, "`") {
			continue // a lone backtick is punctuation
		}
		arg := strings.TrimLeft(rest, " \t")
		argLike := rest == "" || arg == "" || cs18.in(arg[:1]) || strings.HasPrefix(arg, "c:")
		if sub, ok := cmdSubcommands[name]; ok && sub[firstWord(arg)] {
			return start, name, true
		}
		if cmdStrong[name] && (argLike || strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "\t")) {
			if len(name) <= 3 && !argLike {
				continue // short names are common abbreviations; require a shell-shaped argument
			}
			return start, name, true
		}
		if cmdWeak[name] && argLike && rest != "" && arg != "" {
			return start, name, true
		}
		if cmdWeak[name] && (rest == "" || arg == "" || arg[0] == '|' || arg[0] == ';' || arg[0] == '`') {
			return start, name, true
		}
		if sub, ok := cmdSubcommands[name]; ok && sub[firstWord(arg)] {
			return start, name, true
		}
	}
	return 0, "", false
}

// cmdSubcommands are English-word commands that are proof with these sub-commands.
var cmdSubcommands = map[string]map[string]bool{
	"net":   {"user": true, "localgroup": true, "view": true, "share": true, "use": true, "start": true, "stop": true, "accounts": true, "group": true},
	"netsh": {"firewall": true, "advfirewall": true, "interface": true, "wlan": true},
	"which": {"nc": true, "curl": true, "wget": true, "gcc": true, "python": true, "perl": true, "bash": true, "netcat": true, "ncat": true, "socat": true, "python3": true, "php": true},
	"reg":   {"add": true, "delete": true, "query": true, "save": true, "export": true},
}

func firstWord(s string) string {
	if i := cs19.index(s); i >= 0 {
		return s[:i]
	}
	return s
}

// cmdBare reports a value that is itself a command line: a known command followed by a
// shell-shaped argument ("ls -la /etc", "sleep 10", "curl http://...").
func cmdBare(s string) (string, bool) {
	s = strings.TrimLeft(s, " \t'\"")
	s = strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(s, "/usr/bin/"), "/bin/"), "/sbin/")
	name := firstWord(s)
	if name == "" || len(name) == len(s) {
		return "", false
	}
	arg := strings.TrimLeft(s[len(name):], " \t")
	if arg == "" || s[len(name)] != ' ' && s[len(name)] != '\t' {
		return "", false
	}
	if !cmdNames.has(name) {
		return "", false // none of the maps below has it
	}
	argLike := cs20.in(arg[:1]) || strings.HasPrefix(arg, "http") || strings.HasPrefix(arg, "c:")
	if (cmdStrong[name] || cmdWeak[name]) && argLike {
		return name, true
	}
	if sub, ok := cmdSubcommands[name]; ok && sub[firstWord(arg)] {
		return name, true
	}
	return "", false
}

// cmdNames is a wordFilter of the keys of cmdStrong, cmdWeak and cmdSubcommands: most words are
// none of them, and a probe costs less than three map lookups.
var cmdNames = func() *wordFilter {
	var f wordFilter
	for _, m := range []map[string]bool{cmdStrong, cmdWeak} {
		for w := range m {
			f.add(w)
		}
	}
	for w := range cmdSubcommands {
		f.add(w)
	}
	return &f
}()

// isCommandKey reports whether a parameter name says it holds a shell command line.
func isCommandKey(key string) bool {
	switch strings.ToLower(key) {
	case "command", "cmd", "commands", "script", "shell", "command_line", "commandline", "cmdline", "bash", "exec", "run":
		return true
	}
	return false
}

// codeKeyWords are the words isCodeKey looks for, matched in one pass.
var codeKeyWords = newLitSet("code", "snippet", "source", "template", "body", "content", "markdown", "text", "query", "expression", "regex", "pattern")

// isCodeKey reports whether a parameter name says it holds source code, where backticks and $( are
// language syntax.
func isCodeKey(key string) bool {
	k := strings.ToLower(key)
	return codeKeyWords.contains(k)
}
