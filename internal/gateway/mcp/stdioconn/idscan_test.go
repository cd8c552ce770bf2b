package stdioconn

import (
	"strings"
	"testing"
)

func TestIDScan(t *testing.T) {
	big := strings.Repeat("x", 10_000)
	for _, tc := range []struct{ line, want string }{
		{`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"a":"` + big + `"}}`, `3`},
		{`{"method":"tools/call","params":{"id":9,"a":"` + big + `","b":{"id":1}},"jsonrpc":"2.0","id":"s-5"}`, `"s-5"`},
		{`{ "id" : "a,}\"b" , "params":"` + big + `"}`, `"a,}\"b"`},
		{`{"params":"\"id\":4 ` + big + `","id":12}`, `12`},
		{`{"id":1,"id":2,"p":"` + big + `"}`, ``},         // two ids: which one is meant?
		{`{"\u0069d":1,"p":"` + big + `"}`, ``},           // escaped key: not read
		{`[{"id":1,"p":"` + big + `"}]`, ``},              // a batch
		{`{"id":1.5,"p":"` + big + `"}`, ``},              // not an integer
		{`{"id":{"x":1},"p":"` + big + `"}`, ``},          // not a scalar
		{`{"id":null,"p":"` + big + `"}`, ``},             // a notification-shaped null
		{`{"id":"` + strings.Repeat("i", 300) + `"}`, ``}, // too long to quote
		{`{"p":"` + big + `"`, ``},                        // cut short, no id
	} {
		var s idScan
		for i := 0; i < len(tc.line); i += 7 { // in pieces, as the reader sees it
			s.feed([]byte(tc.line[i:min(i+7, len(tc.line))]))
		}
		if got := string(s.id()); got != tc.want {
			t.Errorf("%.60s…: id %q, want %q", tc.line, got, tc.want)
		}
	}
}
