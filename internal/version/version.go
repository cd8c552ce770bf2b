// Package version owns the build stamp of the portcullis binary: the version, the commit and the
// build date, set at link time by the release build
//
//	go build -ldflags "-X github.com/portcullis-ai/portcullis/internal/version.Version=v1.2.3 ..."
//
// and, when a field was not stamped, read from what the Go toolchain embeds (module version,
// vcs.revision, vcs.time). It imports nothing from the module.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Stamped at link time with -X; empty when the build did not stamp them.
var (
	Version string
	Commit  string
	Date    string
)

// Info is the build stamp with every fallback applied.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"go_version"`
}

// Get returns the stamp: the -X values where set, otherwise what debug.ReadBuildInfo knows,
// otherwise "(devel)" and "unknown".
func Get() Info {
	return get(Version, Commit, Date, debug.ReadBuildInfo)
}

func get(v, c, d string, read func() (*debug.BuildInfo, bool)) Info {
	in := Info{Version: v, Commit: c, Date: d, GoVersion: runtime.Version()}
	if bi, ok := read(); ok && bi != nil {
		if in.Version == "" && bi.Main.Version != "" {
			in.Version = bi.Main.Version
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if in.Commit == "" {
					in.Commit = s.Value
				}
			case "vcs.time":
				if in.Date == "" {
					in.Date = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && c == "" && in.Commit != "" {
			in.Commit += "-dirty"
		}
	}
	if in.Version == "" {
		in.Version = "(devel)"
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	if in.Date == "" {
		in.Date = "unknown"
	}
	return in
}

// String is the one-line form `portcullis version` prints.
func (i Info) String() string {
	return fmt.Sprintf("portcullis %s (commit %s, built %s, %s)", i.Version, i.Commit, i.Date, i.GoVersion)
}
