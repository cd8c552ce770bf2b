package server

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Every code the guard declares (its Code… constants) and every code identity declares (its
// newErr sentinels) has an HTTP status of its own in statusOf: read from their source, so a code
// added there fails this test until the table says what it means. Before the table, an unknown
// code — identity_unavailable among them — was answered 401, as if the caller's login had failed.
func TestStatusForIsExhaustive(t *testing.T) {
	var codes []string
	fset := token.NewFileSet()
	for _, dir := range []string{"../guard", "../identity"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.ValueSpec: // const CodeX = "x"
					for i, name := range n.Names {
						if strings.HasPrefix(name.Name, "Code") && i < len(n.Values) {
							if lit, ok := n.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								s, _ := strconv.Unquote(lit.Value)
								codes = append(codes, s)
							}
						}
					}
				case *ast.CallExpr: // newErr("code", "message")
					if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "newErr" && len(n.Args) == 2 {
						if lit, ok := n.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							s, _ := strconv.Unquote(lit.Value)
							codes = append(codes, s)
						}
					}
				}
				return true
			})
		}
	}
	if len(codes) < 25 {
		t.Fatalf("found only %d codes in the sources: %v", len(codes), codes)
	}
	// Codes that never reach statusFor: result actions the outcome handler answers itself, and
	// threat_blocked, a recorded reason whose answer is a policy denial's (200 DENY), and
	// tool_definition_held, a tool definition's, which only the MCP gateway meets, and
	// proposal_not_kept, the reason of a log record beside an allowed call.
	notDenials := map[string]bool{"result_blocked": true, "result_too_large": true, "threat_blocked": true, "tool_definition_held": true,
		"proposal_not_kept": true}
	for _, c := range codes {
		if _, ok := statusOf[c]; !ok && !notDenials[c] {
			t.Errorf("code %q has no status in statusOf", c)
		}
	}
	if got := statusFor("identity_unavailable"); got != http.StatusServiceUnavailable {
		t.Errorf("identity_unavailable (a nonce or key store down) = %d, want 503", got)
	}
	if got := statusFor("no_such_code"); got != http.StatusInternalServerError {
		t.Errorf("an unknown code = %d, want 500", got)
	}
}
