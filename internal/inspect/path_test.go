package inspect

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

func TestPathDetector(t *testing.T) {
	lvl := func(l threat.Level) []kindLevel { return []kindLevel{{KindPathTraversal, l}} }
	tests := []struct {
		name, tool, key, raw string
		roots                []string
		want                 []kindLevel
	}{
		{"plain traversal", "read_file", "path", "../../../srv/app/secret.yaml", nil, lvl(threat.High)},
		{"backslash traversal", "read_file", "path", `..\..\boot.cfg`, nil, lvl(threat.High)},
		{"percent encoded", "read_file", "path", "%2e%2e%2f%2e%2e%2fopt%2fdata", nil, lvl(threat.High)},
		{"double encoded", "read_file", "path", "%252e%252e%252fhome", nil, lvl(threat.High)},
		{"overlong utf8", "read_file", "path", "%c0%ae%c0%ae/x", nil, lvl(threat.High)},
		{"overlong raw bytes", "read_file", "path", "\xc0\xae\xc0\xae\xc0\xafdata", nil, lvl(threat.High)},
		{"percent-u escape", "read_file", "path", "..%u2215..%u2215notes.txt", nil, lvl(threat.High)},
		{"fullwidth dots", "read_file", "path", "．．／．．／notes.txt", nil, lvl(threat.High)},
		{"null byte truncation", "read_file", "path", "report.pdf%00.png", nil, lvl(threat.High)},
		{"single encoded up", "open", "name", "..%2fsettings.ini", nil, lvl(threat.High)},
		{"tomcat semicolon", "fetch", "path", "..;/..;/manager/html", nil, lvl(threat.High)},
		{"UNC path", "open", "file", `\\fileserver7\c$\share`, nil, lvl(threat.High)},
		{"file scheme", "fetch", "url", "file:///var/lib/app/db.sqlite", nil, lvl(threat.High)},
		{"php filter wrapper", "include", "page", "php://filter/convert.base64-encode/resource=index", nil, lvl(threat.High)},
		{"shadow file", "read_file", "path", "/etc/shadow", nil, lvl(threat.High)},
		{"ssh key", "read_file", "path", "~/.ssh/id_ed25519", nil, lvl(threat.High)},
		{"proc environ", "read_file", "path", "/proc/self/environ", nil, lvl(threat.High)},
		{"passwd bare is medium", "read_file", "path", "/etc/passwd", nil, lvl(threat.Medium)},
		{"windows ini", "read_file", "path", `C:\Windows\win.ini`, nil, lvl(threat.Medium)},
		{"one up in path param", "read_file", "path", "../shared/notes.md", nil, lvl(threat.Medium)},
		{"cd dot-dot", "cd", "folder", "..", nil, lvl(threat.Low)},
		{"outside roots", "read_file", "path", "/opt/other/data.csv", []string{"/srv/agent"}, lvl(threat.Medium)},
		{"inside roots", "read_file", "path", "/srv/agent/work/data.csv", []string{"/srv/agent"}, nil},
		{"root prefix is not containment", "read_file", "path", "/srv/agent2/x", []string{"/srv/agent"}, lvl(threat.Medium)},
		{"abs path without roots", "read_file", "path", "/opt/other/data.csv", nil, nil},
		{"system dir without roots", "read_file", "path", "/var/log/nginx/access.log", nil, lvl(threat.Medium)},
		{"windows system dir", "read_file", "file", `D:\Windows\System32\drivers\etc
etworks`, nil, lvl(threat.Medium)},
		{"system dir in prose", "send", "text", "/var/log/syslog", nil, nil},
		{"abs path in prose key", "send", "text", "/opt/other/data.csv", []string{"/srv"}, nil},
		{"relative file", "read_file", "path", "reports/2026/q3.csv", nil, nil},
		{"ellipsis prose", "send", "text", "Wait... what? Really...", nil, nil},
		{"version string", "install", "version", "1.2.3", nil, nil},
		{"url", "fetch", "url", "https://example.com/a/b.html?x=1", nil, nil},
		{"passwd in prose", "send", "text", "reset my passwd please", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := inspectOne(newPathDetector(tt.roots), tt.tool, tt.key, tt.raw)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Inspect(%q) mismatch (-want +got):\n%s", tt.raw, diff)
			}
		})
	}
}

func TestPathDecode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"%2e%2e%2f", "../"},
		{"%252e%252e%252f", "../"},
		{"%25252e", "."},
		{"0x2e0x2e0x5c", `..\`},
		{"%u002e%u002e", ".."},
		{"\xc0\xae\xe0\x80\xae\xf0\x80\x80\xae", "..."},
		{"%zz%2", "%zz%2"},
	}
	for _, tt := range tests {
		if got, _ := pathDecode(tt.in); got != tt.want {
			t.Errorf("pathDecode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzPathDetector(f *testing.F) {
	for _, s := range []string{"../../x", "%c0%ae", "%%32%65", "\\\\h\\s", "file:///x", "..%00", "\xc0", "%u"} {
		f.Add(s)
	}
	d := newPathDetector([]string{"/srv"})
	f.Fuzz(func(t *testing.T, raw string) {
		v := testValue("$.path", "path", raw)
		d.Inspect(&Call{Direction: Request}, &v, func(fd Finding) {
			if fd.Kind != KindPathTraversal || fd.Score <= 0 || fd.Score > 1 {
				t.Fatalf("bad finding %+v", fd)
			}
		})
		pathDecode(raw)
	})
}

func BenchmarkPath(b *testing.B) { benchDetector(b, newPathDetector([]string{"/srv/agent"})) }

// FuzzPathPlainProse checks the shortcut of inspectReading: text plainProse accepts is never
// flagged by the full analysis outside a path parameter.
func FuzzPathPlainProse(f *testing.F) {
	for _, s := range []string{"see the report. then go", "a . b ? c", "up one level: cd ..", "x ?? y", "0x2e0x2e/ a", "file%2e%2e b", "café . x"} {
		f.Add(s)
	}
	d := newPathDetector(nil)
	f.Fuzz(func(t *testing.T, s string) {
		if !plainProse(s) {
			return
		}
		if got, ok := d.inspectDecoded(s, false); ok {
			t.Fatalf("plainProse(%q) but the full analysis reports %+v", s, got)
		}
	})
}
