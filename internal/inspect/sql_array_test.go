package inspect

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/jsonx"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// TestSQLSplitAcrossArrayElements: a tool that joins an array's parts into one query (a filter
// list, a query builder's fragments) receives the injection whole even when no element holds it.
// The elements are also read joined, and a joined finding names the array.
func TestSQLSplitAcrossArrayElements(t *testing.T) {
	e := New(Config{})
	for _, tc := range []struct {
		name, args string
		want       threat.Level
		path       string
	}{
		{"tautology split after the quote", `{"name":["1' OR ","'1'='1"]}`, threat.High, "$.name"},
		{"tautology split into three", `{"parts":["x'"," OR ","'a'='a"]}`, threat.High, "$.parts"},
		{"union split mid-keyword", `{"q":["0' UNI","ON SELECT password FROM users--"]}`, threat.High, "$.q"},
		{"comment truncation split", `{"where":["admin'","-- "]}`, threat.High, "$.where"},
		{"numeric tautology joined by spaces", `{"filter":["1","OR","2=2"]}`, threat.High, "$.filter"},
		{"nested in an object", `{"query":{"terms":["bob' OR ","'z'='z"]}}`, threat.High, "$.query.terms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.Inspect(context.Background(), "lookup", Request, json.RawMessage(tc.args))
			if err != nil {
				t.Fatal(err)
			}
			// The gateway's path: the parameters its one strict parse decoded.
			params, err := jsonx.DecodeObject([]byte(tc.args))
			if err != nil {
				t.Fatal(err)
			}
			byParams, err := e.InspectParams(context.Background(), "lookup", json.RawMessage(tc.args), params)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(res, byParams); diff != "" {
				t.Fatalf("InspectParams differs from Inspect (-text +params):\n%s", diff)
			}
			if res.Level < tc.want {
				t.Fatalf("level %v, want %v; findings %+v", res.Level, tc.want, res.Findings)
			}
			found := false
			for _, f := range res.Findings {
				if f.Kind == KindSQLInjection && f.Path == tc.path && f.Severity >= tc.want {
					found = strings.Contains(f.Evidence, "joined")
				}
			}
			if !found {
				t.Fatalf("no joined sql finding at %s: %+v", tc.path, res.Findings)
			}
		})
	}
}

// TestSQLArrayJoinBenign: ordinary lists (tags, names with apostrophes, argv, sentences) read
// joined stay clean, and responses are not read as queries.
func TestSQLArrayJoinBenign(t *testing.T) {
	e := New(Config{})
	for _, args := range []string{
		`{"tags":["o'brien","d'angelo","smith"]}`,
		`{"names":["Bob's","Alice's","Carol's notes"]}`,
		`{"argv":["ls","-la","/tmp"]}`,
		`{"lines":["It's done.","Don't forget the 1=1 meeting, or we'll be late."]}`,
		`{"ids":["1","2","3","4"]}`,
		`{"status":["open","pending"]}`,
	} {
		res, err := e.Inspect(context.Background(), "search", Request, json.RawMessage(args))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range res.Findings {
			if f.Kind == KindSQLInjection && f.Severity >= threat.Medium {
				t.Errorf("%s: %+v", args, f)
			}
		}
	}
	res, err := e.Inspect(context.Background(), "search", Response, json.RawMessage(`{"content":["1' OR ","'1'='1"]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Findings {
		if f.Kind == KindSQLInjection {
			t.Errorf("response: %+v", f)
		}
	}
}
