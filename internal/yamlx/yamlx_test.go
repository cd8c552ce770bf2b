package yamlx

import (
	"errors"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestClosest(t *testing.T) {
	allowed := []string{"listen", "limits", "log"}
	for in, want := range map[string]string{"listne": "listen", "limit": "limits", "lg": "log", "x": "", "completely-different": ""} {
		if got := Closest(in, allowed); got != want {
			t.Errorf("Closest(%q) = %q, want %q", in, got, want)
		}
	}
	if EditDistance(string(make([]byte, 65)), "a") < 1<<20 {
		t.Error("long strings are far from everything")
	}
}

func TestSyntaxErrorAndShape(t *testing.T) {
	var n yaml.Node
	err := yaml.Unmarshal([]byte("a: 1\nb: [\n  c: d: e\n"), &n)
	if err == nil {
		t.Fatal("no syntax error")
	}
	if line, _, msg := SyntaxError(err); line < 1 || msg == "" || msg[:4] == "yaml" {
		t.Errorf("line %d msg %q", line, msg)
	}
	if line, col, _ := SyntaxError(errors.New("yaml: something")); line != 1 || col != 1 {
		t.Errorf("no position: %d:%d", line, col)
	}
	if err := yaml.Unmarshal([]byte("a: &x 1\nb: *x\n"), &n); err != nil {
		t.Fatal(err)
	}
	if e := CheckShape(n.Content[0], 1, 32, "the configuration"); e == nil || e.Node.Line != 1 {
		t.Errorf("anchor not refused: %+v", e)
	}
}
