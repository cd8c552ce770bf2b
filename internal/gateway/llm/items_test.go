package llm

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCheckedItem(t *testing.T) {
	type got struct {
		Checked      bool
		CallID, Name string
		Args         string
	}
	cases := []struct {
		item string
		want got
	}{
		{`{"type":"function_call","call_id":"c1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}`, got{true, "c1", "get_weather", `{"city":"Paris"}`}},
		{`{"type":"custom_tool_call","call_id":"c2","name":"patch","input":"*** Begin"}`, got{true, "c2", "patch", `{"input":"*** Begin"}`}},
		{`{"type":"computer_call","call_id":"c3","action":{"type":"click","x":1}}`, got{true, "c3", "computer", `{"type":"click","x":1}`}},
		{`{"type":"local_shell_call","call_id":"c4","action":{"type":"exec","command":["ls"]}}`, got{true, "c4", "local_shell", `{"type":"exec","command":["ls"]}`}},
		{`{"type":"function_call","call_id":"c5","arguments":"{}"}`, got{true, "c5", "", "unnamed"}},
		{`{"type":"web_search_call","id":"ws_1","status":"completed"}`, got{}},
		{`{"type":"message","role":"assistant","content":[]}`, got{}},
		{`{"type":"reasoning","summary":[]}`, got{}},
	}
	for _, tc := range cases {
		o, err := parseObject([]byte(tc.item))
		if err != nil {
			t.Fatal(err)
		}
		ok, id, name, args := checkedItem(o)
		if diff := cmp.Diff(tc.want, got{ok, id, name, string(args)}); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.item, diff)
		}
	}
}

func TestArguments(t *testing.T) {
	cases := []struct {
		in   string
		want string
		ok   bool
	}{
		{`{"a": 1}`, `{"a":1}`, true},
		{``, `{}`, true},
		{"  \n", `{}`, true},
		{`[1]`, ``, false},
		{`"x"`, ``, false},
		{`{"a":`, ``, false},
		{`{"a":1} {"b":2}`, ``, false},
		{`null`, ``, false},
	}
	for _, tc := range cases {
		got, ok := arguments([]byte(tc.in))
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("arguments(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"unknown format", Config{Upstreams: map[Format]Upstream{"completions": {BaseURL: "https://x/v1"}}}},
		{"not a URL", Config{Upstreams: map[Format]Upstream{Messages: {BaseURL: "api.anthropic.com"}}}},
		{"credential header", Config{Upstreams: map[Format]Upstream{Responses: {BaseURL: "https://x/v1", Headers: map[string]string{"authorization": "Bearer x"}}}}},
	}
	for _, tc := range cases {
		if _, err := New(tc.cfg, newChecker()); err == nil {
			t.Errorf("%s: New accepted %+v", tc.name, tc.cfg)
		}
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("New accepted a nil Checker")
	}
}

func TestToolNames(t *testing.T) {
	cases := []struct {
		format Format
		tool   string
		want   string
	}{
		{ChatCompletions, `{"type":"function","function":{"name":"get_weather"}}`, "get_weather"},
		{ChatCompletions, `{"type":"custom","custom":{"name":"apply_patch"}}`, "apply_patch"},
		{ChatCompletions, `{"type":"web_search_preview"}`, "web_search_preview"},
		{Responses, `{"type":"function","name":"get_weather"}`, "get_weather"},
		{Responses, `{"type":"mcp","server_label":"github","server_url":"https://mcp.example/"}`, "mcp:github"},
		{Responses, `{"type":"web_search"}`, "web_search"},
	}
	for _, tc := range cases {
		o, err := parseObject([]byte(tc.tool))
		if err != nil {
			t.Fatal(err)
		}
		got := chatToolName(o)
		if tc.format == Responses {
			got = responsesToolName(o)
		}
		if got != tc.want {
			t.Errorf("%s %s: name %q, want %q", tc.format, tc.tool, got, tc.want)
		}
	}
}
