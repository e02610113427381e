package main

import (
	"runtime/debug"
	"strings"
)

// versionString is what `lade --version` prints: lade's module version
// (the tag when installed with `go install ...@vX.Y.Z`, "(devel)" when
// built from a checkout), the VCS revision when the build stamped one
// (with "+dirty" for uncommitted changes), and the Go version.
func versionString(bi *debug.BuildInfo) string {
	if bi == nil {
		return "(unknown build)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	parts := []string{v}
	if rev != "" {
		parts = append(parts, "revision "+rev+dirty)
	}
	return strings.Join(append(parts, bi.GoVersion), ", ")
}

// buildVersion is versionString of this binary.
func buildVersion() string {
	bi, _ := debug.ReadBuildInfo()
	return versionString(bi)
}
