package inspect

import (
	"strings"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Shell spellings that exist to get a command past a filter. None has a place in an ordinary
// argument (a file name, a host, a search term), and most have none in a shell command either.
var (
	// {cat,/etc/passwd}: brace expansion runs "cat /etc/passwd" without a space.
	cmdBraceExpansion = lazyRegexp("(?:^|[;&|\n`(]\\s*|\\$\\(\\s*)\\{[a-z0-9_./-]+,[^}\\s]*\\}")
	// $'\x69d', $'\151\144', $'\u0069d': ANSI-C quoting spells a command in escapes.
	cmdANSIC = lazyRegexp(`\$'[^']*\\(?:x[0-9a-f]{1,2}|[0-7]{2,3}|u[0-9a-f]{4})`)
	// $(printf '\151\144'), `printf "\x69d"`: a command built from escapes at run time.
	cmdPrintfEscape = lazyRegexp("(?:\\$\\(|`)\\s*(?:printf|echo\\s+-e)\\s+['\"]?\\\\(?:x[0-9a-f]|[0-7]{2})")
	// >(sh), <(curl …): process substitution.
	cmdProcessSubst = lazyRegexp(`[<>]\(\s*[a-z/.$]`)
	// Options that make a program write, fetch or run what the caller chooses: passed as the
	// first thing of an ordinary argument, they are argument injection (git's --upload-pack,
	// curl's --output, tar's --to-command, rsync's -e, zip's -T/--unzip-command …).
	cmdArgInjection = lazyRegexp(`^--(?:output|upload-pack|receive-pack|exec|to-command|checkpoint-action|use-compress-program|rsh|rsync-path|unzip-command|post-file|config|eval)(?:=|\s+\S)|^-[eox]\s*['"]?(?:/|(?:ba|z)?sh\b|nc\b|python3?\b|perl\b|ruby\b|php\b)`)
)

// cmdEvasionChars are the bytes one of the spellings above needs, but for quotes and a leading
// '-' (cmdEvasionPossible looks at those without lower-casing the text).
var cmdEvasionChars = charsIn("{$`<>\\")

// cmdEvasionPossible is the cheap precondition of cmdEvasion on a reading r whose charSet is m.
func cmdEvasionPossible(r string, m charSet) bool {
	if m.any(cmdEvasionChars) || strings.HasPrefix(r, "-") {
		return true
	}
	if !m.has('\'') && !m.has('"') {
		return false
	}
	for i := 1; i+1 < len(r); i++ { // a quote inside a word: c''at, w"h"oami
		if (r[i] == '\'' || r[i] == '"') && isASCIILetter(rune(r[i-1])) && (isASCIILetter(rune(r[i+1])) || r[i+1] == r[i]) {
			return true
		}
	}
	return false
}

// cmdEvasion finds a filter-evasion spelling in low (lower-cased). In a shell command (shellCtx)
// only the spellings no task needs count: escapes that spell a command, a brace-expanded command,
// a command name split by quotes; process substitution and options are how shells are used.
func cmdEvasion(low string, m charSet, shellCtx bool) (int, string, threat.Level, bool) {
	if m.has('$') {
		if loc := cmdANSIC.FindStringIndex(low); loc != nil {
			return loc[0], "ANSI-C quoted escapes", threat.High, true
		}
	}
	if m.has('$') || m.has('`') {
		if loc := cmdPrintfEscape.FindStringIndex(low); loc != nil {
			return loc[0], "command spelt with printf escapes", threat.High, true
		}
	}
	if m.has('{') && m.has(',') {
		if loc := cmdBraceExpansion.FindStringIndex(low); loc != nil {
			return loc[0], "brace-expanded command", threat.High, true
		}
	}
	if m.has('\'') || m.has('"') || m.has('\\') {
		if j, ok := unsplitQuotes(low); ok && j != low {
			if w := firstWord(strings.TrimLeft(j, " \t")); cmdStrong[w] && w != firstWord(strings.TrimLeft(low, " \t")) {
				return 0, "command " + w + " split by quotes or backslashes", threat.High, true
			}
			if at, cmd, ok := cmdChained(j, charsOf(j), false); ok {
				if _, _, plain := cmdChained(low, m, false); !plain {
					return min(at, len(low)), "command " + cmd + " split by quotes or backslashes", threat.High, true
				}
			}
		}
	}
	if shellCtx {
		return 0, "", 0, false
	}
	if (m.has('<') || m.has('>')) && m.has('(') {
		if loc := cmdProcessSubst.FindStringIndex(low); loc != nil {
			return loc[0], "process substitution", threat.High, true
		}
	}
	if m.has('-') && strings.HasPrefix(low, "-") {
		if loc := cmdArgInjection.FindStringIndex(low); loc != nil {
			return 0, "option injected as an argument", threat.High, true
		}
	}
	return 0, "", 0, false
}

// unsplitQuotes removes what a shell removes from a word: empty quote pairs (c”at), quotes
// inside a word (w"h"oami) and backslashes before letters (c\at). It reports whether the text
// had any.
func unsplitQuotes(s string) (string, bool) {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case (c == '\'' || c == '"') && i+1 < len(s) && s[i+1] == c && i > 0 && isCmdLetter(s[i-1]):
			i++ // an empty pair inside a word
			changed = true
			continue
		case (c == '\'' || c == '"') && i > 0 && i+1 < len(s) && isCmdLetter(s[i-1]) && isCmdLetter(s[i+1]):
			changed = true // a quote between two letters of a word
			continue
		case c == '\\' && i+1 < len(s) && isCmdLetter(s[i+1]) && s[i+1] != 'n':
			changed = true
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), changed
}

func isCmdLetter(c byte) bool { return c >= 'a' && c <= 'z' }
