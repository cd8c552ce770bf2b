package inspect

import (
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// inspectOne runs detector d over one request value and returns the findings' kinds and severities.
func inspectOne(d Detector, tool, key, raw string) []kindLevel {
	v := testValue("$."+key, key, raw)
	var got []kindLevel
	d.Inspect(&Call{Tool: tool, Direction: Request, Size: len(raw)}, &v, func(f Finding) {
		got = append(got, kindLevel{f.Kind, f.Severity})
	})
	return got
}

type kindLevel struct {
	Kind  string
	Level threat.Level
}

func TestSQLDetector(t *testing.T) {
	high := []kindLevel{{KindSQLInjection, threat.High}}
	medium := []kindLevel{{KindSQLInjection, threat.Medium}}
	tests := []struct {
		name, tool, key, raw string
		want                 []kindLevel
	}{
		{"tautology after quote", "lookup_user", "name", "bob' OR 'z'='z", high},
		{"numeric tautology", "get_order", "id", "42 or 7=7", high},
		{"comment truncation", "login", "user", "root'-- ", high},
		{"union select", "search", "q", "x' UNION ALL SELECT name, pass FROM accounts--", high},
		{"union with inline comment", "search", "q", "0 union/**/select 1,2", high},
		{"time delay mssql", "get_order", "id", "5; WAITFOR DELAY '0:0:9'--", high},
		{"time delay mysql", "get_order", "id", "5) AND sleep(3)#", high},
		{"stacked drop", "get_order", "id", "9; DROP TABLE invoices", high},
		{"subquery probe", "filter", "region", "eu' AND (SELECT count(*) FROM users) > 0 AND 'q'='q", high},
		{"order by probe", "list", "sort", "name ORDER BY 12--", high},
		{"blind function probe", "get", "user", "ann' AND ascii(substr(pwd,1,1))>64 AND 'k'='k", high},
		{"percent-encoded", "search", "q", "abc%27%20or%20%279%27%3D%279", high},
		{"xp_cmdshell", "report", "name", "'; exec master..xp_cmdshell 'ping x'--", high},
		{"whole statement in prose field", "send_email", "body", "SELECT id FROM customers WHERE region = 'north'", medium},
		{"catalog read in prose field", "send_email", "body", "select table_name from information_schema.tables", high},
		{"benign select for sql tool", "postgres_query", "query", "SELECT id, total FROM orders WHERE status = 'open' ORDER BY created_at DESC LIMIT 20", nil},
		{"benign delete for sql tool", "run_sql", "sql", "DELETE FROM sessions WHERE expires_at < now()", nil},
		{"tautology inside sql tool query", "db_query", "query", "SELECT * FROM users WHERE name = 'a' OR 1=1", high},
		{"prose with apostrophes", "send_message", "text", "It's Bob's turn; don't forget the kids' lunches, or they'll be hungry.", nil},
		{"prose with quotes and or", "notes", "text", "She said 'maybe' or 'later' — we'll see.", nil},
		{"hashtags", "post", "text", "Loved it: '#travel, #food'", nil},
		{"title with colon", "game", "title", "Space Raiders: Final Frontier", nil},
		{"negative number", "geo", "lat", "-33.8688", nil},
		{"cli flag", "tool", "argv", "--verbose", nil},
		// libinjection alone reads this as SQL; without SQL structure it stays low.
		{"math expression", "plot", "function", "sin(x) + 2*cos(x)", []kindLevel{{KindSQLInjection, threat.Low}}},
		{"condition fragment", "sql.execute", "conditions", "price >= 100", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := inspectOne(sqlDetector{}, tt.tool, tt.key, tt.raw)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Inspect(%q) mismatch (-want +got):\n%s", tt.raw, diff)
			}
		})
	}
}

func TestSQLDetectorSkipsResponses(t *testing.T) {
	v := testValue("$", "", "x' OR 1=1--")
	sqlDetector{}.Inspect(&Call{Direction: Response}, &v, func(f Finding) {
		t.Errorf("finding on a tool result: %+v", f)
	})
}

func TestSQLEvidenceIsBounded(t *testing.T) {
	raw := "1' UNION SELECT " + strings.Repeat("col,", 500) + "x--"
	v := testValue("$.q", "q", raw)
	sqlDetector{}.Inspect(&Call{Direction: Request}, &v, func(f Finding) {
		if len(f.Evidence) > 4*maxEvidence || f.Path != "$.q" || f.Score <= 0 || f.Score > 1 {
			t.Errorf("bad finding %+v", f)
		}
	})
}

func FuzzSQLDetector(f *testing.F) {
	for _, s := range []string{"a' or 'b'='b", "1; select 1", "/*!50000union*/", "'\"`", "((((", "select", "--", "#"} {
		f.Add("db_query", "query", s)
	}
	f.Fuzz(func(t *testing.T, tool, key, raw string) {
		v := testValue("$.k", key, raw)
		sqlDetector{}.Inspect(&Call{Tool: tool, Direction: Request}, &v, func(fd Finding) {
			if fd.Kind != KindSQLInjection || fd.Score <= 0 || fd.Score > 1 || fd.Severity > threat.Critical {
				t.Fatalf("bad finding %+v", fd)
			}
		})
	})
}

func TestSQLIsStatement(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"select a, b from t where x = 1", true},
		{"select * from t", true},
		{"select version();", true},
		{"insert into t (a) values (1)", true},
		{"update accounts set balance = 0", true},
		{"delete from sessions", true},
		{"create table t (a int)", true},
		{"with x as (select 1) select * from x", true},
		{"select the best option from the list", false},
		{"update on the flight issue", false},
		{"create a file named report.pdf", false},
		{"with the car ready, drive from home", false},
		{"show me all restaurants", false},
		{"delete the old photos", false},
	}
	for _, tt := range tests {
		if got := sqlIsStatement(sqlLexInto(nil, tt.in)); got != tt.want {
			t.Errorf("sqlIsStatement(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzSQLOperatorOrComment(f *testing.F) {
	for _, s := range []string{"a=b", "x -- y", "a-b", "/*", "a/b", "--", "-", "/", "plain text"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := strings.ContainsAny(s, "=<>;#@|&") || strings.Contains(s, "--") || strings.Contains(s, "/*")
		if got := sqlOperatorOrComment(s); got != want {
			t.Fatalf("sqlOperatorOrComment(%q) = %v, want %v", s, got, want)
		}
	})
}

// TestSQLGateFilter checks that sqlGateFilter lets through every word sqlWordGate can accept: each
// word-shaped string literal of sqlWordGate and sqlGateSingle (read from the source, so a word added
// there and forgotten in sqlGateWords fails here) and each key of sqlDangerFuncs.
func TestSQLGateFilter(t *testing.T) {
	file, err := parser.ParseFile(gotoken.NewFileSet(), "sql.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var words []string
	for _, decl := range file.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "sqlWordGate" && fn.Name.Name != "sqlGateSingle" {
			continue
		}
		ast.Inspect(fn, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == gotoken.STRING {
				if w, err := strconv.Unquote(lit.Value); err == nil && w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyz0123456789_$") == "" {
					words = append(words, w)
				}
			}
			return true
		})
	}
	if len(words) < 40 {
		t.Fatalf("found only %d words in sqlWordGate and sqlGateSingle", len(words))
	}
	for w := range sqlDangerFuncs {
		words = append(words, w)
	}
	for _, w := range words {
		if !sqlGateFilter.has(w) && !strings.Contains(w, "_") {
			t.Errorf("sqlGateFilter rejects %q, which sqlWordGate accepts", w)
		}
	}
}

// FuzzSQLWorthLexing checks sqlWorthLexing's word filter against asking sqlWordGate about every word.
func FuzzSQLWorthLexing(f *testing.F) {
	for _, s := range []string{"meeting with the team", "x or true", "order by 1", "drop table t", "sleep(1)", "a like 'b'",
		"xp_cmdshell", "update t set a", "copy t from", "sys.tables", "' or '1", "select", "backup database", "user()"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		s = lowerASCII(s)
		want := sqlOperatorOrComment(s)
		var prev, prev2 string
		for i, first := 0, true; i < len(s) && !want; {
			if !(s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9' || s[i] == '_') {
				if q := s[i]; q == '\'' || q == '"' || q == '`' {
					r := strings.TrimLeft(s[i+1:], " )\t")
					want = strings.HasPrefix(r, "or") || strings.HasPrefix(r, "and") || strings.HasPrefix(r, "xor") || strings.HasPrefix(r, "div")
				}
				i++
				continue
			}
			j := i
			for j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9' || s[j] == '_' || s[j] == '$') {
				j++
			}
			want = sqlWordGate(s, j, s[i:j], prev, prev2, first)
			prev2, prev, first = prev, s[i:j], false
			i = j
		}
		if got := sqlWorthLexing(s); got != want {
			t.Fatalf("sqlWorthLexing(%q) = %v, asking sqlWordGate about every word says %v", s, got, want)
		}
	})
}
