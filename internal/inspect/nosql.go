package inspect

import (
	"strings"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// nosqlDetector finds MongoDB-style operator injection: query operators smuggled in as object keys
// ({"password": {"$ne": null}}), as bracket parameters (password[$ne]=x), or as JSON text inside a
// string, and server-side JavaScript breaking out of a string ("'; return true; var x='").
//
// A database tool whose filter legitimately uses $gt or $in is not attacked by them, so on such
// tools only the code-executing operators ($where, $function, $accumulator) are findings.
type nosqlDetector struct{}

var _ Detector = nosqlDetector{}

func (nosqlDetector) Name() string { return "nosql" }

// nosqlOperators are the MongoDB query operators attackers use; code marks those that run JavaScript.
var nosqlOperators = map[string]bool{
	"$ne": false, "$eq": false, "$gt": false, "$gte": false, "$lt": false, "$lte": false, "$in": false,
	"$nin": false, "$regex": false, "$exists": false, "$or": false, "$and": false, "$not": false,
	"$nor": false, "$elemmatch": false, "$expr": false, "$type": false, "$size": false, "$all": false,
	"$where": true, "$function": true, "$accumulator": true, "$eval": true,
}

// nosqlChars are the bytes of an operator or a quote break-out: a reading holding none of them
// (nor "db.") is skipped.
var nosqlChars = charsIn("$'\"|;")

var (
	// password[$ne]=1, user[$regex]=.*
	nosqlBracket = lazyRegexp(`\[\s*\$([a-z]+)\s*\]\s*=`)
	// {"$gt": ""} or { $ne: 1 } or , $where: '...'
	nosqlJSONOp = lazyRegexp(`(?:^|[{,\[(]|['"]\s*,)\s*["']?\$([a-z]+)["']?\s*:`)
	// Server-side JavaScript after a quote break-out.
	nosqlJS = lazyRegexp(`['"]\s*(?:;|&&|\|\|)\s*(?:return\b|this\.|sleep\s*\(|while\s*\(|it\s*=|db\.|var\s|[a-z0-9'"]+\s*==)|\bthis\.[a-z_]+\.match\s*\(|\bdb\.[a-z_]+\.(?:insert|find|drop|remove|update|mapreduce)\s*\(|\|\|\s*1\s*==\s*1|\breturn\s*\(?\s*true\b`)
)

func (nosqlDetector) Inspect(c *Call, v *Value, report func(Finding)) {
	if c.Direction != Request {
		return
	}
	dbTool := c.toolIs(factDatabaseTool, isDatabaseTool)
	// Operator text inside a string is legitimate only where a database tool takes its filter as
	// JSON text; in a user name or a search term it is an injection on any tool.
	textFilter := dbTool && v.keyIs(factFilterKey, isFilterKey)
	found := func(sev threat.Level, score float64, why, at string) {
		report(Finding{Kind: KindNoSQLInjection, Severity: sev, Path: v.Path, Evidence: why + ": " + excerpt(at, 0), Score: score})
	}
	// The value sits under an operator key, or is an operator key itself.
	keys := [...]string{v.Key, ""}
	if v.IsKey {
		keys[1] = v.Raw
	}
	// On a database tool an operator key is legitimate inside a filter ({"filter": {"age": {"$gt":
	// 3}}}), not under a scalar field like a user name ({"username": {"$ne": ""}}): the JSON path
	// says which.
	inFilter := dbTool && isFilterKey(v.Path)
	for _, k := range keys {
		if len(k) < 3 || k[0] != '$' {
			continue // every operator starts with '$' (and lower-casing makes no '$')
		}
		lk := strings.ToLower(k)
		if code, ok := nosqlOperators[lk]; ok && (code || !inFilter) {
			found(threat.High, 0.85, "query operator "+lk+" as key", k)
			return
		}
	}
	var best Finding
	foldedReadings(v, func(r string) bool {
		if m := v.readingChars(r); !m.any(nosqlChars) && !(m.has('.') && strings.Contains(r, "db.")) {
			return true
		}
		r = lowerASCII(r)
		if len(r) > 4096 {
			r = r[:4096]
		}
		hasOp := nosqlHasOperator(r)
		for _, m := range nosqlBracketMatches(r, hasOp) {
			if _, ok := nosqlOperators["$"+m[1]]; ok {
				best = Finding{Severity: threat.High, Score: 0.9, Evidence: "bracket operator $" + m[1] + ": " + excerpt(r, 0)}
				return false
			}
		}
		if hasOp {
			for _, m := range nosqlJSONOp.FindAllStringSubmatch(r, 4) {
				if code, ok := nosqlOperators["$"+m[1]]; ok && (code || !textFilter) {
					best = Finding{Severity: threat.High, Score: 0.85, Evidence: "operator $" + m[1] + " in text: " + excerpt(r, 0)}
					return false
				}
			}
		}
		if !nosqlJSHint(r) {
			return true
		}
		if loc := nosqlJS.FindStringIndex(r); loc != nil {
			best = Finding{Severity: threat.High, Score: 0.75, Evidence: "server-side JavaScript: " + excerpt(r, loc[0])}
			return false
		}
		return true
	})
	if best.Score > 0 {
		best.Kind, best.Path = KindNoSQLInjection, v.Path
		report(best)
	}
}

// nosqlHasOperator reports a '$' followed by the name of a query operator: the regexps that look
// for operators run only then.
func nosqlHasOperator(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] != '$' {
			continue
		}
		j := i + 1
		for j < len(s) && s[j] >= 'a' && s[j] <= 'z' {
			j++
		}
		if _, ok := nosqlOperators[s[i:j]]; ok {
			return true
		}
	}
	return false
}

func nosqlBracketMatches(s string, hasOp bool) [][]string {
	if !hasOp || strings.IndexByte(s, '[') < 0 {
		return nil
	}
	return nosqlBracket.FindAllStringSubmatch(s, 4)
}

// nosqlJSHint is the cheap precondition of nosqlJS: a quote followed by a statement separator or
// a boolean operator, or one of the JavaScript idioms it looks for.
func nosqlJSHint(s string) bool {
	if strings.Contains(s, "this.") || strings.Contains(s, "db.") || strings.Contains(s, "return") || strings.Contains(s, "||") {
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '\'' && s[i] != '"' {
			continue
		}
		j := i + 1
		for j < len(s) && s[j] == ' ' {
			j++
		}
		if j < len(s) && (s[j] == ';' || s[j] == '&' || s[j] == '|') {
			return true
		}
	}
	return false
}

// filterKeyWords are the words isFilterKey looks for, matched in one pass.
var filterKeyWords = newLitSet("filter", "query", "where", "selector", "match", "criteria", "condition", "pipeline", "find", "update", "sort", "projection")

// isFilterKey reports whether a parameter name says it holds a database filter or pipeline.
func isFilterKey(key string) bool {
	k := strings.ToLower(key)
	return filterKeyWords.contains(k)
}

// dbToolWords are the words isDatabaseTool looks for, matched in one pass.
var dbToolWords = newLitSet("mongo", "db", "database", "sql", "query", "collection", "find", "aggregate", "elastic", "couch", "dynamo", "firestore", "redis")

// isDatabaseTool reports whether a tool name says it talks to a database.
func isDatabaseTool(tool string) bool {
	t := strings.ToLower(tool)
	return dbToolWords.contains(t)
}
