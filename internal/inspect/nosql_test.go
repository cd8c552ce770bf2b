package inspect

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

func TestNoSQLDetector(t *testing.T) {
	high := []kindLevel{{KindNoSQLInjection, threat.High}}
	tests := []struct {
		name, tool, key, raw string
		want                 []kindLevel
	}{
		{"operator key on login", "login", "$ne", "", high},
		{"operator as key value", "login", "", "$gt", nil}, // a leaf, not a key
		{"bracket form", "http_get", "query", "user=ann&pin[$ne]=0000", high},
		{"json in string", "login", "password", `{"$gt": ""}`, high},
		{"bare json op", "search", "q", "{ $regex: '.*' }", high},
		{"where clause", "search", "q", "x', $where: 'sleep(100)'", high},
		{"js breakout", "search", "name", "z'; return true; var q='", high},
		{"this.match", "search", "name", "a' && this.secret.match(/.*/)//", high},
		{"db tool, operator outside a filter", "mongo_find", "$gt", "", high}, // path $.$gt: no filter above it
		{"db tool where still bad", "mongo_find", "$where", "", high},
		{"price text", "send", "text", "It costs $5, or $ne... no", nil},
		{"shell var", "send", "text", "echo $HOME", nil},
		{"money json", "pay", "memo", `{"amount": "$20"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := inspectOne(nosqlDetector{}, tt.tool, tt.key, tt.raw)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Inspect(%q) mismatch (-want +got):\n%s", tt.raw, diff)
			}
		})
	}
}

func FuzzNoSQLDetector(f *testing.F) {
	for _, s := range []string{"[$ne]=1", `{"$where":"1"}`, "'||1==1", "$", "[$"} {
		f.Add("find", "k", s)
	}
	f.Fuzz(func(t *testing.T, tool, key, raw string) {
		v := testValue("$.k", key, raw)
		nosqlDetector{}.Inspect(&Call{Tool: tool}, &v, func(fd Finding) {
			if fd.Kind != KindNoSQLInjection || fd.Score <= 0 || fd.Score > 1 {
				t.Fatalf("bad finding %+v", fd)
			}
		})
	})
}

func BenchmarkNoSQL(b *testing.B) { benchDetector(b, nosqlDetector{}) }

func TestNoSQLOperatorKeyPath(t *testing.T) {
	eng := New(Config{Detectors: []Detector{nosqlDetector{}}})
	for _, tt := range []struct {
		raw  string
		want threat.Level
	}{
		{`{"filter": {"age": {"$gt": 30}}}`, threat.None},
		{`{"username": {"$ne": ""}, "password": {"$ne": ""}}`, threat.High},
		{`{"query": {"$where": "sleep(100)"}}`, threat.High},
	} {
		res, err := eng.Inspect(t.Context(), "mongo_find", Request, []byte(tt.raw))
		if err != nil || res.Level != tt.want {
			t.Errorf("%s: level %v, err %v; want %v", tt.raw, res.Level, err, tt.want)
		}
	}
}

func TestNoSQLDatabaseFilterText(t *testing.T) {
	high := []kindLevel{{KindNoSQLInjection, threat.High}}
	if diff := cmp.Diff([]kindLevel(nil), inspectOne(nosqlDetector{}, "mongo_find", "filter", `{"age": {"$gt": 30}}`)); diff != "" {
		t.Errorf("JSON filter for a database tool (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(high, inspectOne(nosqlDetector{}, "find_users", "username", `{"$ne": ""}`)); diff != "" {
		t.Errorf("operator in a user name (-want +got):\n%s", diff)
	}
}
