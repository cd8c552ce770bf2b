package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGet(t *testing.T) {
	bi := &debug.BuildInfo{Main: debug.Module{Version: "v0.3.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	read := func() (*debug.BuildInfo, bool) { return bi, true }
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	gov := runtime.Version()
	for _, tc := range []struct {
		name    string
		v, c, d string
		read    func() (*debug.BuildInfo, bool)
		want    Info
	}{
		{"stamped wins", "v1.2.3", "deadbeef", "2026-12-07", read, Info{"v1.2.3", "deadbeef", "2026-12-07", gov}},
		{"build info fallback", "", "", "", read, Info{"v0.3.0", "abc123-dirty", "2026-01-02T03:04:05Z", gov}},
		{"nothing known", "", "", "", none, Info{"(devel)", "unknown", "unknown", gov}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, get(tc.v, tc.c, tc.d, tc.read)); d != "" {
				t.Errorf("get (-want +got):\n%s", d)
			}
		})
	}
	if s := (Info{"v1", "c", "d", "go1.26"}).String(); !strings.Contains(s, "v1") || !strings.Contains(s, "commit c") {
		t.Errorf("String() = %q", s)
	}
}
