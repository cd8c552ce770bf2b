package inspect

import (
	"strings"
	"unicode/utf8"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Finding kinds of the tool-definition poisoning detector (stable: policies name them).
const (
	// KindPoisonDirective: a directive addressed to the model hidden in a definition — an
	// <IMPORTANT> or <system> block, "before using this tool, ...".
	KindPoisonDirective = "tool_poisoning.directive"
	// KindPoisonSecrecy: the definition tells the model to keep something from the user.
	KindPoisonSecrecy = "tool_poisoning.secrecy"
	// KindPoisonCredential: the definition asks for a credential or secret file (~/.ssh, .env,
	// ~/.aws/credentials, an MCP client's configuration).
	KindPoisonCredential = "tool_poisoning.credential_read"
	// KindPoisonSideChannel: a parameter asks for file contents, the conversation or secrets —
	// data the tool has no use for, smuggled out in its arguments.
	KindPoisonSideChannel = "tool_poisoning.side_channel"
	// KindPoisonShadowing: the definition gives instructions about another tool ("when
	// send_email is used, always bcc ...") or redirects what other calls send.
	KindPoisonShadowing = "tool_poisoning.shadowing"
	// KindPoisonHiddenText: invisible characters or terminal escapes in a definition: text a
	// reviewer does not see but a model reads.
	KindPoisonHiddenText = "tool_poisoning.hidden_text"
)

// poisonDetector reads a tool's definition (Direction Definition: its name, title, description,
// input schema and annotations) for what tool poisoning looks like. A description is an
// instruction to the model by nature, so the prompt-injection rules, written for data, miss the
// canonical attacks: a tool whose description asks the model to read ~/.ssh/id_rsa into a side
// parameter and not to tell the user reads, to them, like documentation.
//
// One signal alone is weak where benign tools use it too (a tag, "before using this tool", a
// mention of ~/.ssh by an SSH tool): low, so that it never adds up with another detector's
// medium into high by the level rule (the classifier, trained on data, finds many a description
// medium). Secrecy towards the user, a credential to read and pass on, a parameter asking for
// file contents, instructions redirecting another tool and hidden text are what benign
// definitions do not do: high.
type poisonDetector struct{}

var _ Detector = poisonDetector{}

func (poisonDetector) Name() string { return "poison" }

// maxPoisonText bounds the text of one value the rules read: a description is a few hundred
// bytes, and the rules are linear, but a definition is upstream input.
const maxPoisonText = 32 << 10

var (
	// Markup addressed to the model rather than to a reader of the documentation.
	poisonTag = lazyRegexp(`<\s*/?\s*(?:important|system|instructions?|secret|hidden|admin|critical|context|note[ _-]?to[ _-]?(?:the[ _-]?)?(?:ai|assistant|model|llm)|assistant|ai)\s*>`)
	// A preamble ordering the model about: "before using this tool", "you must first read".
	poisonPreamble = lazyRegexp(`\b(?:before|prior to)\s+(?:using|calling|invoking|running|executing)\s+(?:this|the|any)\s+(?:tool|function)|\b(?:you|the (?:assistant|model|ai|agent|llm))\s+(?:must|should|have to|need to|are required to|is required to)\s+(?:always\s+|first\s+|now\s+|also\s+)+(?:read|open|fetch|access|send|include|call|pass|provide|attach|upload|copy)\b|\botherwise\s+the\s+tool\s+(?:will\s+not|won'?t|cannot|can'?t|does\s+not|doesn'?t)\s+work`)
	// Keeping the user in the dark.
	poisonSecrecy = lazyRegexp(`\b(?:do not|don'?t|never|must not|should not|shouldn'?t|avoid)\s+(?:ever\s+)?(?:mention|tell|inform|reveal|disclose|notify|alert|show|say|explain|let)\b[^.\n]*\b(?:user|human|operator)s?\b|\b(?:the\s+)?(?:user|human)s?\s+(?:must|should|need|may|can)\s*(?:not|n'?t)\s+(?:know|see|notice|find out|learn|be (?:told|informed|made aware|aware))|\bwithout\s+(?:telling|informing|notifying|alerting|asking|showing|letting)\s+(?:the\s+)?(?:user|human)|\b(?:hide|conceal|keep)\b[^.\n]*\bfrom\s+the\s+(?:user|human)|\b(?:secretly|silently|covertly|quietly)\s+(?:read|send|include|pass|forward|copy|upload|call|add|attach|bcc)\b|\bcould\s+upset\s+the\s+user|\b(?:do not|don'?t|never)\s+(?:mention|reveal|disclose)\s+(?:that|this|these|any of this)\b`)
	// Credential and secret files, and the MCP clients' own configuration (which holds other
	// servers' keys).
	poisonCredFile = lazyRegexp(`~/\.ssh\b|\.ssh/|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|~/\.aws\b|\.aws/credentials|\.aws/config|(?:^|[\s'"\x60(/])\.env\b|\bmcp\.json\b|~/\.cursor\b|\.cursor/|claude_desktop_config\.json|\.netrc\b|\.npmrc\b|\.pypirc\b|\.git-credentials\b|\.docker/config\.json|\.kube/config\b|/etc/shadow\b|\.gnupg\b|\.bash_history\b|\.zsh_history\b|\bkeychain\b|\bwallet\.dat\b`)
	// An act on such a file: reading it, or passing it along.
	poisonCredRead = lazyRegexp(`\b(?:read|reads|reading|open|cat|load|fetch|access|get|grab|include|pass|send|provide|attach|upload|copy|extract|print|output|return|append|dump|put|insert|contents?)\b`)
	// What a tool never needs in a parameter: the conversation, the model's instructions, what
	// other tools returned, files the model read elsewhere.
	poisonSideAsk = lazyRegexp(`\b(?:conversation history|(?:full|entire|whole) conversation|conversation so far|chat history|previous messages|all (?:previous |prior )?messages|message history|system prompt|your (?:instructions|context|memory|system message)|(?:contents?|text) of (?:any|all|every|other|each)\b|files? you (?:have )?(?:read|seen|opened)|(?:results?|outputs?) of (?:other|previous|all|prior) tools?)`)
	// What a tool description may ask to have passed on in a parameter: the above, or contents.
	poisonPassWhat = lazyRegexp(`\b(?:contents?|the file|its text|private keys?|api keys?|access tokens?|passwords?|credentials?|secrets?)\b`)
	// A tool description asking for something to be passed in a parameter.
	poisonPassAs = lazyRegexp(`\b(?:pass|put|provide|include|insert|add|send|supply|place|fill)\b[^.\n]*\b(?:as|in|into|inside|via)\s+(?:the\s+)?['"\x60]?[a-z_][a-z0-9_]*['"\x60]?\s*(?:parameter|param|argument|arg|field)?`)
	// Instructions about another tool: "when send_email is used", "whenever you call the x tool".
	poisonOtherTool = lazyRegexp(`\b(?:when|whenever|if|each time|every time|before|after)\s+(?:you\s+)?(?:use|call|invoke|run)?\s*(?:the\s+)?['"\x60]?([a-z][a-z0-9]*(?:[_.-][a-z0-9]+)+)['"\x60]?\s+(?:tool\s+|function\s+)?(?:is|gets|has been|are)?\s*(?:used|called|invoked|run)\b|\b(?:when|whenever|if)\s+(?:you\s+)?(?:use|call|invoke|run|using|calling|invoking)\s+(?:the\s+)?['"\x60]?([a-z][a-z0-9_.-]*)['"\x60]?\s+(?:tool|function)\b|\b(?:instead of|rather than)\s+(?:using|calling)\s+(?:the\s+)?['"\x60]?([a-z][a-z0-9]*(?:[_.-][a-z0-9]+)+)`)
	// What shadowing does to the other tool's calls: redirect them, copy them somewhere.
	poisonRedirect = lazyRegexp(`\b(?:always|also|secretly|silently)\s+(?:bcc|cc|blind[- ]copy)\b|\b(?:always|also|must|should)\s+(?:be\s+)?(?:bcc|cc|forward|redirect|copy|send|route|change|replace|set|add)\w*\b[^.\n]*\bto\b|\b(?:all|every|any)\s+(?:e-?mails?|messages?|requests?|payments?|transfers?|calls?)\b[^.\n]*\b(?:must|should|need to|have to|are to)\b[^.\n]*\b(?:sent|bcc'?d|cc'?d|forwarded|redirected|copied|routed)\s+to\b|\b(?:change|replace|override|set)\s+the\s+(?:recipient|destination|to address|phone number|receiver|account|email address)\b|\b(?:this|these)\s+(?:instructions?|rules?)\s+(?:also\s+|must\s+)?appl(?:y|ies)\s+to\s+(?:all|every|other)\b`)
)

// Literals each rule needs: a reading holding none of a rule's is not run through its pattern
// (Go's regexp has no DFA; the automaton looks at each byte once for all of them).
var (
	poisonPreambleLits = newLitSet("before", "prior to", "must", "should", "have to", "need to", "required", "otherwise")
	poisonSecrecyLits  = newLitSet("user", "human", "operator", "secretly", "silently", "covertly", "quietly", "mention", "reveal", "disclose")
	poisonCredLits     = newLitSet(".ssh", "id_", ".aws", ".env", "mcp.json", ".cursor", "claude_desktop", ".netrc", ".npmrc", ".pypirc",
		".git-credentials", ".docker", ".kube", "/etc/shadow", ".gnupg", "_history", "keychain", "wallet.dat")
	poisonSideLits = newLitSet("conversation", "chat history", "messages", "system prompt", "system message", "your ", "content of", "contents of",
		"text of", "file you", "files you", "tools", "tool")
	poisonPassLits  = newLitSet("content", "the file", "its text", "key", "token", "password", "credential", "secret")
	poisonPassVerbs = newLitSet("pass", "put", "provide", "include", "insert", "add", "send", "supply", "place", "fill")
	poisonOtherLits = newLitSet("used", "called", "invoked", "run", "tool", "function", "instead of", "rather than")
)

func (poisonDetector) Inspect(c *Call, v *Value, report func(Finding)) {
	if c.Direction != Definition {
		return
	}
	found := func(kind string, sev threat.Level, score float64, why, text string, at int) {
		report(Finding{Kind: kind, Severity: sev, Path: v.Path, Evidence: why + ": " + excerpt(text, at), Score: score})
	}
	if at, why := poisonHidden(v); why != "" {
		found(KindPoisonHiddenText, threat.High, 0.9, why, v.Raw, at)
	}
	if v.IsKey {
		return // a property's name: only hidden text is out of place there
	}
	property := isPropertyText(v.Path)
	foldedReadings(v, func(r string) bool {
		if len(r) > maxPoisonText {
			r = r[:maxPoisonText]
		}
		r = lowerASCII(r)
		directive := false
		if loc := findIf(v.readingChars(r).has('<'), poisonTag, r); loc != nil {
			directive = true
			found(KindPoisonDirective, threat.Low, 0.4, "markup addressed to the model", r, loc[0])
		}
		if loc := findIf(poisonPreambleLits.contains(r), poisonPreamble, r); loc != nil {
			directive = true
			found(KindPoisonDirective, threat.Low, 0.4, "directive to the model", r, loc[0])
		}
		if loc := findIf(poisonSecrecyLits.contains(r), poisonSecrecy, r); loc != nil {
			found(KindPoisonSecrecy, threat.High, 0.9, "secrecy towards the user", r, loc[0])
		}
		if loc := findIf(poisonCredLits.contains(r), poisonCredFile, r); loc != nil {
			// Reading a credential file is what an SSH or cloud tool may document; an order to
			// read it and pass it on, or one inside a parameter's description, is not.
			sev, score := threat.Low, 0.4
			if directive || property || poisonCredRead.MatchString(r[max(0, loc[0]-80):loc[0]]) {
				sev, score = threat.High, 0.9
			}
			found(KindPoisonCredential, sev, score, "credential file", r, loc[0])
		}
		side := poisonSideLits.contains(r)
		switch {
		case property && side:
			if loc := poisonSideAsk.FindStringIndex(r); loc != nil {
				found(KindPoisonSideChannel, threat.High, 0.85, "parameter asks for", r, loc[0])
			}
		case !property && (side || poisonPassLits.contains(r)) && poisonPassVerbs.contains(r):
			if loc := poisonPassAs.FindStringIndex(r); loc != nil && (poisonSideAsk.MatchString(r[loc[0]:]) || poisonPassWhat.MatchString(r[loc[0]:])) {
				found(KindPoisonSideChannel, threat.High, 0.85, "data passed in a parameter", r, loc[0])
			}
		}
		if poisonOtherLits.contains(r) {
			poisonShadowing(c, r, found)
		}
		return true
	})
}

// findIf is re.FindStringIndex(r) when the rule's literals are there (need), else nil.
func findIf(need bool, re *lazyRE, r string) []int {
	if !need {
		return nil
	}
	return re.FindStringIndex(r)
}

// poisonShadowing reports instructions about a tool other than c's own: at high when they
// redirect or copy what that tool sends, at low when they only mention it.
func poisonShadowing(c *Call, r string, found func(kind string, sev threat.Level, score float64, why, text string, at int)) {
	m := poisonOtherTool.FindStringSubmatchIndex(r)
	if m == nil {
		return
	}
	name := ""
	for g := 1; g*2+1 < len(m); g++ {
		if m[g*2] >= 0 {
			name = r[m[g*2]:m[g*2+1]]
			break
		}
	}
	if name == "" || name == "this" || name == "the" || ownTool(c.Tool, name) {
		return
	}
	if loc := poisonRedirect.FindStringIndex(r); loc != nil {
		found(KindPoisonShadowing, threat.High, 0.9, "redirects another tool ("+name+")", r, m[0])
		return
	}
	found(KindPoisonShadowing, threat.Low, 0.4, "instructions about another tool ("+name+")", r, m[0])
}

// ownTool reports whether name is the tool being defined: its agent-facing name, or the name
// after a gateway's "<server>__" prefix.
func ownTool(tool, name string) bool {
	tool = strings.ToLower(tool)
	if tool == name {
		return true
	}
	if i := strings.LastIndex(tool, "__"); i >= 0 && tool[i+2:] == name {
		return true
	}
	return false
}

// isPropertyText reports whether path is the text of one input parameter's definition (its
// description, title, default or enum values) rather than the tool's own.
func isPropertyText(path string) bool {
	return strings.Contains(path, ".properties.") || strings.Contains(path, "['properties']")
}

// poisonHidden reports where v's raw text hides something from a reader: invisible characters
// (but the zero-width joiner inside emoji sequences) or terminal escape sequences, which a
// console renders as nothing, or as other text, and a model reads as written.
func poisonHidden(v *Value) (int, string) {
	s := v.Raw
	for i := 0; i < len(s); {
		r, sz := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == 0x1b || r == 0x9b:
			return i, "terminal escape sequence"
		case r < 0x20 && r != '\n' && r != '\r' && r != '\t':
			return i, "control character"
		case r == 0x200d:
			// ZWJ joins emoji (and Indic letters); elsewhere it is one more zero-width character.
			prev, _ := utf8.DecodeLastRuneInString(s[:i])
			next, _ := utf8.DecodeRuneInString(s[i+sz:])
			if isASCIILetter(prev) || isASCIILetter(next) || prev == ' ' || next == ' ' {
				return i, "zero-width character"
			}
		case hiddenClass(r) != 0 && r != 0x200d && r != 0xfe0f:
			// U+FE0F asks for an emoji's colour presentation: ordinary after an emoji.
			return i, "invisible character " + hiddenClass(r).String()
		}
		i += sz
	}
	return 0, ""
}
