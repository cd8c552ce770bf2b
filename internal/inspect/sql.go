package inspect

import (
	"strings"
	"sync"

	"github.com/corazawaf/libinjection-go"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// sqlDetector finds SQL injection. It combines two readings of a value:
//
//   - libinjection's tokenizer/fingerprint engine (the one ModSecurity and Coraza use), which judges
//     whether the value would change the structure of a query it was pasted into;
//   - a small SQL lexer of its own that looks for the structures injections need and prose lacks:
//     UNION SELECT, boolean tautologies, time-delay and file/exec functions, stacked statements,
//     comment truncation after a quote.
//
// libinjection alone flags some prose ("Call of Duty: Modern Warfare") and misses payloads that
// start mid-expression (") waitfor delay ..."), so a high-severity finding needs SQL structure from
// the lexer, and libinjection's verdict raises confidence. A value that is a whole SQL statement
// (it starts with SELECT, UPDATE, ...) is a query, not a fragment: libinjection's verdict means
// nothing there, and only attack structures inside it (a tautology, a time delay, xp_cmdshell, a
// stacked statement after a comment) are reported.
type sqlDetector struct{}

var (
	_ Detector    = sqlDetector{}
	_ arrayJoiner = sqlDetector{}
)

func (sqlDetector) Name() string { return "sql" }

// maxSQLScan bounds the bytes of one reading the SQL lexer looks at; injections are short and sit
// at the start of a value.
const maxSQLScan = 4096

func (sqlDetector) Inspect(c *Call, v *Value, report func(Finding)) {
	if c.Direction != Request {
		return // a tool result is data for the agent, not input to a query
	}
	var best Finding
	// The tool or the parameter is meant to carry SQL: then a whole statement is expected, and
	// only attack structures inside it are findings.
	dbContext := v.keyIs(factSQLKey, sqlKey) || c.toolIs(factSQLTool, isSQLTool) && v.keyIs(factSQLToolKey, sqlToolKey)
	readings(v, func(r string) bool {
		if len(r) < 3 || r == v.Raw && len(v.Norm) == len(r) && v.normFoldsRaw() {
			return true // Norm is this reading lower-cased, and case means nothing to SQL
		}
		if len(r) > maxSQLScan {
			r = r[:maxSQLScan]
		}
		f, ok := sqlReading(r, v.readingChars(r), dbContext)
		if ok && f.Score > best.Score {
			best = f
		}
		return best.Severity < threat.High
	})
	if best.Kind != "" {
		best.Path = v.Path
		report(best)
	}
}

// sqlJoinChars are the bytes an injection split across array elements needs in some element: a
// quote to break out of a literal, a comparison, a comment, a statement separator, a bracket.
var sqlJoinChars = charsIn("'\"`=<>-#;(/*")

// joinsArrays asks for an array's string elements joined (a tool may build one query from them)
// in requests, when some element holds a byte an injection needs.
func (sqlDetector) joinsArrays(c *Call, _ []string, chars charSet) bool {
	return c.Direction == Request && chars.any(sqlJoinChars)
}

// sqlToolWords are the words isSQLTool looks for, matched in one pass.
var sqlToolWords = newLitSet("sql", "database", "db", "postgres", "mysql", "sqlite", "oracle", "mssql", "snowflake", "bigquery", "redshift", "clickhouse", "warehouse", "duckdb")

// sqlKey reports a parameter name that always carries SQL.
func sqlKey(key string) bool {
	switch strings.ToLower(key) {
	case "sql", "statement", "stmt", "sql_query", "sqlquery", "sql_statement", "raw_sql":
		return true
	}
	return false
}

// isSQLTool reports a tool name that says it talks to a SQL database.
func isSQLTool(tool string) bool { return sqlToolWords.contains(strings.ToLower(tool)) }

// sqlToolKey reports a parameter name that, on a SQL tool, carries the statement.
func sqlToolKey(key string) bool {
	k := strings.ToLower(key)
	return k == "" || strings.Contains(k, "query") || strings.Contains(k, "sql") || k == "q" || k == "command"
}

var sqlTokPool = sync.Pool{New: func() any { b := make([]sqlTok, 0, 64); return &b }}

// sqlTypography maps the typographic quotes and dashes word processors substitute (and payload
// lists copy) back to the ASCII SQL reads: ’ ‘ ′ → ', “ ” ″ → ", – — → --.
var sqlTypography = strings.NewReplacer("\u2019", "'", "\u2018", "'", "\u2032", "'", "\u02bc", "'",
	"\u201c", `"`, "\u201d", `"`, "\u2033", `"`, "\u2013", "--", "\u2014", "--")

func sqlReading(r string, rc charSet, dbContext bool) (Finding, bool) {
	lower := lowerASCII(r)
	lc := rc
	if rc&charNonASCII != 0 {
		lower = sqlTypography.Replace(lower)
		lc = charsOf(lower)
	}
	if !sqlWorthLexingChars(lower, lc) {
		// No operator, comment, keyword or quote break-out: nothing for the lexer to find.
		if len(r) <= maxBareFragment && rc.any(sqlPunctChars) && sqlPunctuated(r) {
			if li, fp := libinjection.IsSQLi(r); li {
				return Finding{Kind: KindSQLInjection, Severity: threat.Low, Evidence: "libinjection " + fp + ": " + excerpt(r, 0), Score: 0.3}, true
			}
		}
		return Finding{}, false
	}
	buf := sqlTokPool.Get().(*[]sqlTok)
	defer func() {
		clear(*buf)
		*buf = (*buf)[:0]
		sqlTokPool.Put(buf)
	}()
	toks := sqlLexInto((*buf)[:0], lower)
	*buf = toks
	if sqlIsStatement(toks) {
		sig := sqlSignals(toks, false)
		switch {
		case sig.attack != "":
			// Structures no legitimate query needs.
			return Finding{Kind: KindSQLInjection, Severity: threat.High, Evidence: sig.attack + ": " + excerpt(r, sig.at), Score: 0.85}, true
		case dbContext:
			return Finding{}, false // a query for a database tool: what it may do is the policy's business
		case sig.introspection != "":
			return Finding{Kind: KindSQLInjection, Severity: threat.High, Evidence: "SQL statement reading " + sig.introspection + ": " + excerpt(r, 0), Score: 0.75}, true
		default:
			// A whole statement where no SQL is expected is odd (a stacked payload, or an agent
			// steered into passing SQL), but it is also how people talk about SQL.
			return Finding{Kind: KindSQLInjection, Severity: threat.Medium, Evidence: "SQL statement in a non-SQL parameter: " + excerpt(r, 0), Score: 0.5}, true
		}
	}
	sig := sqlSignals(toks, false)
	// Like libinjection, also read the value as the tail of a quoted literal: in `name = '<value>'`
	// the value's first quote closes the application's string and what follows is SQL.
	for _, q := range [...]byte{'\'', '"'} {
		if sig.attack != "" {
			break
		}
		i := strings.IndexByte(lower, q)
		if i < 0 || i > maxQuotePrefix {
			continue // a break-out quote sits near the start of an injected value
		}
		start := len(*buf)
		qt := append(*buf, sqlTok{kind: tStr, text: lower[:i]})
		qt = sqlLexInto(qt, lower[i+1:])
		*buf = qt
		qt = qt[start:]
		for j := 1; j < len(qt); j++ {
			qt[j].at += i + 1
		}
		s2 := sqlSignals(qt, true)
		if s2.attack != "" {
			sig = s2
		} else if sig.structure == "" && s2.structure != "" {
			sig.structure, sig.at = s2.structure, s2.at
		}
	}
	// libinjection is the costliest step; a value with no SQL structure of its own is only worth
	// asking about when it is short — the size of an injected fragment, not of a paragraph.
	var li bool
	var fp string
	if sig.attack != "" || sig.structure != "" || len(r) <= maxBareFragment && sqlPunctuated(r) {
		li, fp = libinjection.IsSQLi(r)
	}
	switch {
	case sig.attack != "":
		score := 0.85
		if li {
			score = 0.95
		}
		return Finding{Kind: KindSQLInjection, Severity: threat.High, Evidence: sig.attack + ": " + excerpt(r, sig.at), Score: score}, true
	case li && sig.structure != "":
		return Finding{Kind: KindSQLInjection, Severity: threat.High, Evidence: "libinjection " + fp + ", " + sig.structure + ": " + excerpt(r, sig.at), Score: 0.8}, true
	case sig.structure != "" && sqlPrefixed(r):
		// The value only parses as an injection once placed after a number or a closing
		// parenthesis — the way it would sit in `WHERE id = <value>`.
		return Finding{Kind: KindSQLInjection, Severity: threat.High, Evidence: "in numeric context, " + sig.structure + ": " + excerpt(r, sig.at), Score: 0.7}, true
	case li:
		// Tokenizer verdict without SQL structure: often prose with quotes. Worth recording, not
		// worth blocking on.
		return Finding{Kind: KindSQLInjection, Severity: threat.Low, Evidence: "libinjection " + fp + ": " + excerpt(r, 0), Score: 0.3}, true
	}
	return Finding{}, false
}

// sqlGateSingle reports words that alone make a value worth lexing. A switch, not a map: it runs
// for every word of every value.
func sqlGateSingle(w string) bool {
	if len(w) < 4 {
		return false
	}
	switch w {
	case "union", "select", "sleep", "benchmark", "waitfor", "exec", "execute", "truncate", "having", "rlike",
		"regexp", "shutdown", "declare", "pragma", "outfile", "dumpfile", "information_schema", "load_file",
		"session_user", "system_user", "extractvalue", "updatexml", "sysobjects", "sysusers", "syscolumns",
		"sysdatabases", "randomblob":
		return true
	}
	return false
}

// sqlWorthLexing is the cheap pre-check of sqlReading: one pass over the words of s looking for
// anything a lexer rule needs — an operator or comment, a SQL keyword, a keyword pair ("order by",
// "drop table", "or true"), a dangerous function call, a quote followed by a boolean operator, or a
// value that starts with a boolean operator. Prose fails it and is not lexed.
func sqlWorthLexing(s string) bool { return sqlWorthLexingChars(s, charsOf(s)) }

// sqlWorthLexingChars is sqlWorthLexing given the charSet of s.
func sqlWorthLexingChars(s string, sc charSet) bool {
	if sc.any(sqlOpChars) && sqlOperatorOrComment(s) {
		return true
	}
	var prev, prev2 string
	first := true
	for i := 0; i < len(s); {
		c := s[i]
		if sqlWordClass[c]&sqlWordStart == 0 {
			if c == '\'' || c == '"' || c == '`' {
				// A quote followed by a boolean operator: `' or '1`, `") and (`.
				j := i + 1
				for j < len(s) && (s[j] == ' ' || s[j] == ')' || s[j] == '\t') {
					j++
				}
				if r := s[j:]; strings.HasPrefix(r, "or") || strings.HasPrefix(r, "and") || strings.HasPrefix(r, "xor") || strings.HasPrefix(r, "div") {
					return true
				}
			}
			i++
			continue
		}
		j := i
		var seen uint8
		for j < len(s) && sqlWordClass[s[j]]&sqlWordRest != 0 {
			seen |= sqlWordClass[s[j]]
			j++
		}
		w := s[i:j]
		// Most words of prose are none of the words sqlWordGate compares with (nor hold the '_' of
		// its function prefixes): one table probe rules them out.
		if (sqlGateFilter.has(w) || seen&sqlWordUnderscore != 0) && sqlWordGate(s, j, w, prev, prev2, first) {
			return true
		}
		prev2, prev, first = prev, w, false
		i = j
	}
	return false
}

// sqlWordGate reports whether the word w = s[:j]'s last word, after prev2 and prev, makes s worth
// lexing. Every word it can accept is one of its string literals, a key of sqlDangerFuncs or a
// word holding '_' — what sqlGateFilter is built from (TestSQLGateFilter checks that).
func sqlWordGate(s string, j int, w, prev, prev2 string, first bool) bool {
	nextByte := func(j int) byte {
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		if j < len(s) {
			return s[j]
		}
		return 0
	}
	switch {
	case sqlGateSingle(w):
		return true
	case strings.IndexByte(w, '_') > 0 && (strings.HasPrefix(w, "xp_") || strings.HasPrefix(w, "pg_") || strings.HasPrefix(w, "dbms_") || strings.HasPrefix(w, "utl_") || strings.HasPrefix(w, "current_") || strings.HasPrefix(w, "sp_")):
		// (every prefix holds a '_': most words are rejected by one byte search)
		return true
	case first && (w == "or" || w == "and"):
		return true // an appended condition
	case (w == "true" || w == "false" || w == "null" || w == "not") && (prev == "or" || prev == "and"):
		return true
	case w == "by" && (prev == "order" || prev == "group"):
		return true
	case (w == "table" || w == "database" || w == "user" || w == "index" || w == "view" || w == "schema" || w == "login") && (prev == "create" || prev == "drop" || prev == "alter"):
		return true
	case w == "into" && prev == "insert", w == "from" && prev == "delete", w == "insert" && prev == "bulk", w == "set" && prev2 == "update",
		(w == "from" || w == "to") && prev2 == "copy", w == "tables" && prev == "show", w == "database" && prev == "backup":
		return true
	case w == "like" && (nextByte(j) == '\'' || nextByte(j) == '"'):
		return true
	case nextByte(j) == '(' && (sqlDangerFuncs[w] != "" || w == "version" || w == "database" || w == "user"):
		return true
	case w == "sys" && j < len(s) && s[j] == '.':
		return true
	}
	return false
}

// sqlGateWords are the words sqlWordGate compares a word or its predecessors with (besides
// sqlDangerFuncs and words with '_'); sqlGateFilter is built from them.
const sqlGateWords = `union select sleep benchmark waitfor exec execute truncate having rlike regexp shutdown declare
	pragma outfile dumpfile information_schema load_file session_user system_user extractvalue updatexml sysobjects
	sysusers syscolumns sysdatabases randomblob or and true false null not by table database user index view schema
	login into from insert set to tables like version sys
	order group create drop alter delete bulk update copy show backup` // (the last line only precedes the others)

// Byte classes of sqlWorthLexing's word scan.
const (
	sqlWordStart      uint8 = 1 << iota // a-z 0-9 _ : starts a word
	sqlWordRest                         // a-z 0-9 _ $ : continues one
	sqlWordUnderscore                   // _
)

var sqlWordClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = sqlWordStart | sqlWordRest
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = sqlWordStart | sqlWordRest
	}
	t['_'] = sqlWordStart | sqlWordRest | sqlWordUnderscore
	t['$'] = sqlWordRest
	return t
}()

// sqlGateFilter is a bitmap over (length, first byte, last byte) — lexKey — of the words
// sqlWordGate can accept: a word that misses it is not looked at further.
var sqlGateFilter = func() *wordFilter {
	var f wordFilter
	for _, w := range strings.Fields(sqlGateWords) {
		f.add(w)
	}
	for w := range sqlDangerFuncs {
		f.add(w)
	}
	return &f
}()

// sqlOperatorOrComment reports, in one pass, any of =<>;#@|& or a "--" or "/*" comment opener.
func sqlOperatorOrComment(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !sqlOpStart.has(c) {
			continue
		}
		switch c {
		case '-':
			if i+1 < len(s) && s[i+1] == '-' {
				return true
			}
		case '/':
			if i+1 < len(s) && s[i+1] == '*' {
				return true
			}
		default:
			return true
		}
	}
	return false
}

var sqlOpStart = newByteSet("=<>;#@|&-/")

// sqlOpChars and sqlPunctChars are the bytes without which sqlOperatorOrComment and
// sqlPunctuated are false.
var (
	sqlOpChars    = charsIn("=<>;#@|&-/")
	sqlPunctChars = charsIn("'\"`();#-/")
)

// sqlPunctuated reports the punctuation a SQL fragment needs to break out of a literal or a
// clause: quotes, parentheses, comments, statement separators. Ids, dates, paths and URLs lack it.
func sqlPunctuated(r string) bool {
	return cs15.in(r) || strings.Contains(r, "--") || strings.Contains(r, "/*")
}

// sqlPrefixed runs libinjection as if the value followed a number (optionally inside parentheses).
func sqlPrefixed(r string) bool {
	for _, p := range [...]string{"1 ", "1) "} {
		if ok, _ := libinjection.IsSQLi(p + r); ok {
			return true
		}
	}
	return false
}

type sqlTokKind uint8

const (
	tWord sqlTokKind = iota
	tNum
	tStr
	tOp
	tComment
	tVar // @name or @@name
)

type sqlTok struct {
	kind sqlTokKind
	text string
	at   int
	open bool // a string whose closing quote is missing (the value breaks out of a literal)
}

// maxBareFragment is the longest value handed to libinjection when the lexer saw no SQL structure.
const maxBareFragment = 96

// maxQuotePrefix bounds where the quote a value breaks out with may sit.
const maxQuotePrefix = 64

// maxSQLTokens bounds the token slice; the interesting structure is at the start.
const maxSQLTokens = 256

// sqlLexInto splits lower-cased s into SQL tokens. It is deliberately forgiving: anything it does not
// understand becomes a one-byte operator. MySQL executable comments (/*!50000 ... */) are treated as
// their content, other comments as tokens of their own.
// sqlLexInto appends the tokens of s to toks.
func sqlLexInto(toks []sqlTok, s string) []sqlTok {
	i := 0
	for limit := len(toks) + maxSQLTokens; i < len(s) && len(toks) < limit; {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == '+' && i > 0 && s[i-1] != ' ' && isWordByte(s[i-1]) && i+1 < len(s) && isWordByte(s[i+1]):
			i++
		case c == '/' && strings.HasPrefix(s[i:], "/*!"):
			toks = append(toks, sqlTok{kind: tOp, text: "/*!", at: i})
			i += 3
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				i++
			}
		case c == '/' && strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			j := len(s)
			if end >= 0 {
				j = i + 2 + end + 2
			}
			toks = append(toks, sqlTok{kind: tComment, text: "/*", at: i})
			i = j
		case c == '*' && strings.HasPrefix(s[i:], "*/"):
			i += 2
		case c == '-' && strings.HasPrefix(s[i:], "--"), c == '#' && (i+1 == len(s) || !isWordByte(s[i+1])):
			toks = append(toks, sqlTok{kind: tComment, text: s[i : i+1], at: i})
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				i = len(s)
			} else {
				i += j
			}
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				toks = append(toks, sqlTok{kind: tStr, text: s[i+1:], at: i, open: true})
				i = len(s)
			} else {
				toks = append(toks, sqlTok{kind: tStr, text: s[i+1 : j], at: i})
				i = j + 1
			}
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && (isWordByte(s[j]) || s[j] == '.') {
				j++
			}
			toks = append(toks, sqlTok{kind: tNum, text: s[i:j], at: i})
			i = j
		case c == '@':
			j := i + 1
			for j < len(s) && (s[j] == '@' || isWordByte(s[j])) {
				j++
			}
			toks = append(toks, sqlTok{kind: tVar, text: s[i:j], at: i})
			i = j
		case isWordByte(c):
			j := i
			for j < len(s) && (isWordByte(s[j]) || s[j] == '$') {
				j++
			}
			toks = append(toks, sqlTok{kind: tWord, text: s[i:j], at: i})
			i = j
		default:
			j := i + 1
			if j < len(s) {
				switch s[i : j+1] {
				case "||", "&&", "!=", "<>", "<=", ">=", "==", "::":
					j++
				}
			}
			toks = append(toks, sqlTok{kind: tOp, text: s[i:j], at: i})
			i = j
		}
	}
	return toks
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

var sqlStatementStart = map[string]bool{
	"select": true, "insert": true, "update": true, "delete": true, "with": true, "create": true,
	"drop": true, "alter": true, "show": true, "describe": true, "explain": true, "replace": true,
	"merge": true, "truncate": true, "grant": true, "revoke": true, "call": true, "pragma": true,
	"begin": true, "upsert": true, "values": true,
}

// sqlIsStatement reports whether the tokens form a whole statement: a statement keyword first, in
// the grammatical shape SQL requires ("UPDATE t SET", "DELETE FROM t", "SELECT a, b FROM t",
// "CREATE TABLE"), so that English sentences starting with "Update", "Create", "With" or "Show" are
// not mistaken for SQL.
func sqlIsStatement(t []sqlTok) bool {
	if len(t) < 2 || t[0].kind != tWord {
		return false
	}
	w := func(i int) string {
		if i < len(t) && t[i].kind == tWord {
			return t[i].text
		}
		return ""
	}
	isOp := func(i int, s string) bool { return i < len(t) && t[i].kind == tOp && t[i].text == s }
	ident := func(i int) bool { return i < len(t) && (t[i].kind == tWord || t[i].kind == tStr && !t[i].open) }
	switch t[0].text {
	case "select":
		// SELECT <column list> FROM, or SELECT <expr>; / SELECT <expr> at the end.
		for i := 1; i < len(t) && i < 24; i++ {
			k := t[i]
			switch {
			case k.kind == tWord && k.text == "from":
				return i > 1 && !sqlEnglish[w(i+1)]
			case k.kind == tWord && k.text != "a" && sqlEnglish[k.text], k.kind == tWord && k.text == "me":
				return false // English
			case k.kind == tOp && !(k.text == "," || k.text == "*" || k.text == "." || k.text == "(" || k.text == ")"):
				return k.text == ";" && i > 1
			}
		}
		return false
	case "insert", "replace":
		return w(1) == "into" && ident(2)
	case "update":
		return ident(1) && (w(2) == "set" || isOp(2, ".") && w(4) == "set")
	case "delete":
		return w(1) == "from" && ident(2)
	case "create", "drop", "alter", "truncate":
		n := 1
		for w(n) == "or" || w(n) == "replace" || w(n) == "temporary" || w(n) == "temp" || w(n) == "unique" || w(n) == "if" || w(n) == "not" || w(n) == "exists" {
			n++
		}
		switch w(n) {
		case "table", "index", "view", "database", "schema", "user", "function", "procedure", "trigger", "role", "sequence":
			return true
		}
		return false
	case "with":
		return ident(1) && w(2) == "as" && isOp(3, "(") && w(4) == "select"
	case "show":
		switch w(1) {
		case "tables", "databases", "columns", "grants", "variables", "processlist", "schemas", "create":
			return true
		}
		return false
	case "pragma":
		return ident(1)
	case "grant", "revoke":
		return sqlHasWordAfter(t, 1, "on") && (sqlHasWordAfter(t, 1, "to") || sqlHasWordAfter(t, 1, "from"))
	}
	return false
}

type sqlFound struct {
	introspection string // server internals: catalogs, version, settings
	attack        string // a structure only injections need
	structure     string // SQL structure that is not proof on its own
	at            int
}

var sqlDangerFuncs = map[string]string{
	"sleep": "time delay", "pg_sleep": "time delay", "benchmark": "time delay", "randomblob": "time delay",
	"load_file": "file read", "xp_cmdshell": "command execution", "xp_dirtree": "out-of-band access",
	"sp_executesql": "dynamic SQL", "sp_oacreate": "command execution", "extractvalue": "error-based extraction",
	"updatexml": "error-based extraction", "utl_http": "out-of-band access", "utl_inaddr": "out-of-band access",
	"dbms_pipe": "time delay", "dbms_lock": "time delay", "sys_eval": "command execution", "sys_exec": "command execution",
	"pg_read_file": "file read", "lo_import": "file read", "dbms_xmlgen": "error-based extraction",
	"openrowset": "out-of-band access", "opendatasource": "out-of-band access",
}

var sqlCatalogs = map[string]bool{
	"information_schema": true, "pg_shadow": true, "pg_catalog": true, "sysobjects": true, "syscolumns": true,
	"sys": false, "mysql": false, "all_tables": true, "user_tables": true, "all_users": true,
	"sqlite_master": true, "sysdatabases": true, "pg_user": true, "dba_users": true, "v$version": true,
	"sysusers": true, "pg_group": true, "pg_authid": true, "sysservers": true, "sysxlogins": true, "sys.sql_logins": true,
}

var sqlIntrospect = map[string]bool{
	"version": true, "current_setting": true, "current_user": true, "session_user": true, "system_user": true,
	"current_database": true, "database": false, "user": false, "pg_ls_dir": true, "has_database_privilege": true,
}

var sqlStacked = map[string]bool{
	"select": true, "drop": true, "insert": true, "update": true, "delete": true, "exec": true,
	"execute": true, "declare": true, "shutdown": true, "create": true, "alter": true, "truncate": true,
	"backup": true, "waitfor": true, "grant": true, "copy": true,
}

// sqlInteresting holds every word the default branch of sqlSignals looks up, so that ordinary words
// cost one map probe.
var sqlInteresting = func() map[string]bool {
	m := map[string]bool{}
	for w := range sqlDangerFuncs {
		m[w] = true
	}
	for w := range sqlCatalogs {
		m[w] = true
	}
	for w := range sqlIntrospect {
		m[w] = true
	}
	return m
}()

// sqlEnglish are determiners that follow "select"/"from" in English but not in SQL.
var sqlEnglish = map[string]bool{"the": true, "a": true, "an": true, "my": true, "your": true, "our": true, "this": true, "that": true, "these": true, "those": true, "their": true}

// sqlInfix are the keyword operators that can sit between two string literals.
var sqlInfix = map[string]bool{"like": true, "or": true, "and": true, "xor": true, "div": true, "regexp": true, "rlike": true}

var sqlObject = map[string]bool{
	"table": true, "user": true, "database": true, "into": true, "from": true, "login": true,
	"procedure": true, "function": true, "trigger": true, "view": true, "schema": true, "role": true,
}

// sqlSignals scans the tokens for injection structures.
func sqlSignals(t []sqlTok, quoted bool) sqlFound {
	var f sqlFound
	attack := func(what string, at int) {
		if f.attack == "" {
			f.attack, f.at = what, at
		}
	}
	structure := func(what string, at int) {
		if f.structure == "" {
			f.structure = what
			if f.attack == "" {
				f.at = at
			}
		}
	}
	word := func(i int) string {
		if i < len(t) && i >= 0 && t[i].kind == tWord {
			return t[i].text
		}
		return ""
	}
	op := func(i int) string {
		if i < len(t) && i >= 0 && t[i].kind == tOp {
			return t[i].text
		}
		return ""
	}
	sawQuoteBreak := quoted || len(t) > 0 && (t[0].kind == tStr && t[0].open || t[0].kind == tOp && (t[0].text == ")" || t[0].text == "'"))
	if quoted && len(t) > 2 && t[0].kind == tStr && t[0].text == "" {
		switch n := t[1]; {
		case n.kind == tWord && sqlStacked[n.text] && t[2].kind == tWord && sqlObject[t[2].text]:
			attack("statement after quote", n.at)
		case (n.kind == tOp && n.text != "," || n.kind == tWord && sqlInfix[n.text]) && len(t) == 3 && t[2].kind == tStr && t[2].open:
			attack("operator between literals", n.at) // `'&'`, `'='`, `'^'`, `'like'`
		case n.kind == tOp && (n.text == "||" || n.text == "+") && t[2].kind == tWord && len(t) > 3 && t[3].kind == tOp && t[3].text == "(":
			attack("function concatenated into literal", n.at)
		}
	}
	if len(t) >= 2 && t[0].kind == tWord && (t[0].text == "or" || t[0].text == "and") {
		// A value that starts with a boolean operator is a condition appended to someone's query.
		if len(t) == 2 && t[1].kind == tNum || len(t) >= 4 && t[2].kind == tOp && strings.Contains("=<>!", t[2].text[:1]) {
			attack("appended condition", t[0].at)
		}
	}
	if len(t) >= 4 && t[0].kind == tWord && t[0].text == "copy" && (word(2) == "from" || word(2) == "to") && (t[3].kind == tStr || word(3) == "program") {
		attack("server file access", t[0].at)
	}
	for i, k := range t {
		switch k.kind {
		case tComment:
			if i > 0 {
				structure("comment", k.at)
				// A comment right after a quote or a closing parenthesis truncates the rest of the
				// query: the classic `admin'--`.
				p := t[i-1]
				if p.kind == tStr && (p.open || i == 1) || p.kind == tOp && p.text == ")" && sawQuoteBreak {
					attack("comment truncation", p.at)
				}
			}
		case tVar:
			if strings.HasPrefix(k.text, "@@") {
				f.introspection = k.text
				structure("server variable", k.at)
				if word(i-1) == "select" || op(i-1) == "(" || op(i-1) == "," {
					attack("server variable read", k.at)
				}
			}
		case tOp:
			switch k.text {
			case "/*!":
				attack("MySQL executable comment", k.at) // no prose contains /*!
			case ";":
				if w := word(i + 1); sqlStacked[w] && (i > 0 || len(t) > 2) {
					structure("stacked statement", k.at)
					if i+2 < len(t) && (t[i+2].kind != tWord || sqlStatementStart[w] || w == "exec" || w == "waitfor" || w == "declare" || w == "shutdown") {
						attack("stacked statement", k.at)
					}
				}
			case "(":
				if word(i+1) == "select" {
					structure("subquery", k.at)
					if sqlHasWordAfter(t, i+2, "from") || sqlHasFuncAfter(t, i+2) {
						attack("subquery", k.at)
					}
				}
			case "||", "&&":
				sqlBoolean(t, i, quoted, attack, structure)
			}
		case tWord:
			w := k.text
			switch w {
			case "union":
				n := i + 1
				if word(n) == "all" || word(n) == "distinct" {
					n++
				}
				for n < len(t) && t[n].kind == tComment {
					n++
				}
				if word(n) == "select" || op(n) == "(" && word(n+1) == "select" {
					attack("union select", k.at)
				}
			case "or", "and", "xor", "having", "where", "when":
				sqlBoolean(t, i, quoted, attack, structure)
			case "waitfor":
				if n := word(i + 1); n == "delay" || n == "time" {
					attack("time delay", k.at)
				}
			case "into":
				if n := word(i + 1); n == "outfile" || n == "dumpfile" {
					attack("file write", k.at)
				}
			case "order", "group":
				if word(i+1) == "by" && i+2 < len(t) && t[i+2].kind == tNum {
					structure("column probe", k.at)
					if i == 0 || sawQuoteBreak || i+3 >= len(t) || t[i+3].kind == tComment || op(i+3) == "," {
						attack("column-count probe", k.at)
					}
				}
			case "exec", "execute":
				if n := word(i + 1); n == "master" || strings.HasPrefix(n, "xp_") || strings.HasPrefix(n, "sp_") {
					attack("command execution", k.at)
				}
			case "select":
				if i+1 < len(t) && (t[i+1].kind == tVar || op(i+1) == "*" || t[i+1].kind == tNum) || sqlHasWordAfter(t, i+1, "from") {
					structure("select", k.at)
				}
			case "drop", "truncate":
				if n := word(i + 1); n == "table" || n == "database" || n == "schema" {
					structure("drop", k.at)
				}
			case "backup", "bulk":
				if n := word(i + 1); n == "database" || n == "insert" {
					attack("server file access", k.at)
				}
			default:
				if !sqlInteresting[w] && !strings.HasPrefix(w, "information_schema") {
					break
				}
				if what, ok := sqlDangerFuncs[w]; ok && op(i+1) == "(" {
					attack(what, k.at)
				} else if what, ok := sqlDangerFuncs[w]; ok && w == "xp_cmdshell" {
					attack(what, k.at)
				} else if sqlIntrospect[w] && (op(i+1) == "(" || word(i-1) == "select") {
					f.introspection = w
					structure("server introspection", k.at)
				} else if sqlCatalogs[w] || strings.HasPrefix(w, "information_schema") {
					f.introspection = w
					structure("system catalog", k.at)
					if sqlHasWordBefore(t, i, "from") {
						attack("system catalog read", k.at)
					}
				}
			}
		}
	}
	return f
}

// sqlBoolean looks at the operand after a boolean keyword at t[i] for a literal comparison — `OR
// 1=1`, `AND 'a'='a`, `OR x=x`, `OR true`, `') OR ('x')=('x` — the shape of a tautology or a
// blind-injection probe. quoted says the value was read as the tail of a quoted literal.
func sqlBoolean(t []sqlTok, i int, quoted bool, attack, structure func(string, int)) {
	isOp := func(n int, s string) bool { return n < len(t) && t[n].kind == tOp && t[n].text == s }
	n := i + 1
	for isOp(n, "(") {
		n++
	}
	if n >= len(t) {
		return
	}
	a := t[n]
	if a.kind == tWord && (a.text == "true" || a.text == "false" || a.text == "null") && (n+1 == len(t) || t[n+1].kind == tComment || t[n+1].kind == tOp) {
		if t[i].text != "when" {
			attack("boolean tautology", t[i].at)
		}
		return
	}
	if quoted && a.kind == tStr && (n+1 == len(t) && a.open || n+1 < len(t) && t[n+1].kind == tStr) {
		// `' OR '1` and `' or '' '`: the application's own closing quote completes the expression.
		attack("boolean tautology", t[i].at)
		return
	}
	if quoted && a.kind == tWord && isOp(n+1, "(") && t[i].text != "when" {
		// `' AND substring(password,1,1)='a`: a function result compared — a blind probe.
		attack("blind probe", t[i].at)
		return
	}
	n++
	for isOp(n, ")") {
		n++
	}
	if n >= len(t) {
		return
	}
	cmp := t[n]
	if cmp.kind == tWord && cmp.text == "not" && n+1 < len(t) {
		n++
		cmp = t[n]
	}
	isCmp := cmp.kind == tOp && (cmp.text == "=" || cmp.text == "==" || cmp.text == "<" || cmp.text == ">" ||
		cmp.text == "!=" || cmp.text == "<>" || cmp.text == "<=" || cmp.text == ">=") ||
		cmp.kind == tWord && (cmp.text == "like" || cmp.text == "rlike" || cmp.text == "regexp")
	if !isCmp && a.kind == tStr && cmp.kind == tOp && strings.Contains("&|^*-+/%", cmp.text) {
		isCmp = true // `' or ''&'`: arithmetic on string literals
	}
	if !isCmp {
		return
	}
	n++
	for isOp(n, "(") {
		n++
	}
	if n >= len(t) {
		// `OR 'a'='` : the quote that closes it is the application's.
		if a.kind == tStr || a.kind == tNum {
			attack("boolean tautology", t[i].at)
		}
		return
	}
	b := t[n]
	literal := func(x sqlTok) bool { return x.kind == tNum || x.kind == tStr }
	switch {
	case literal(a) && literal(b):
		attack("boolean tautology", t[i].at)
	case a.kind == tWord && b.kind == tWord && a.text == b.text:
		attack("boolean tautology", t[i].at)
	case literal(a) || literal(b):
		structure("comparison", t[i].at)
	}
}

func sqlHasWordAfter(t []sqlTok, from int, w string) bool {
	for i := from; i < len(t) && i < from+12; i++ {
		if t[i].kind == tWord && t[i].text == w {
			return true
		}
	}
	return false
}

func sqlHasWordBefore(t []sqlTok, at int, w string) bool {
	for i := at - 1; i >= 0 && i >= at-3; i-- {
		if t[i].kind == tWord && t[i].text == w {
			return true
		}
	}
	return false
}

// sqlHasFuncAfter reports a function call shortly after position from: `(select if(...))`.
func sqlHasFuncAfter(t []sqlTok, from int) bool {
	for i := from; i+1 < len(t) && i < from+6; i++ {
		if t[i].kind == tWord && t[i+1].kind == tOp && t[i+1].text == "(" {
			return true
		}
	}
	return false
}
