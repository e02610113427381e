package main

import (
	"runtime/debug"

	"github.com/moby/buildkit/version"
)

// buildkitModule is the module whose version lade-buildkitd reports.
const buildkitModule = "github.com/moby/buildkit"

// setVersion fills BuildKit's version variables, which BuildKit's own
// builds set with -ldflags, from the binary's build info when they were
// left at their defaults: Package is lade-buildkitd's, Version the BuildKit
// module it is built on (the API it speaks, which clients show: buildctl
// debug info, buildx inspect and ls), Revision lade's VCS revision.
// Without this every client showed "v0.0.0+unknown".
func setVersion(bi *debug.BuildInfo) {
	if bi == nil || version.Version != "v0.0.0+unknown" {
		return
	}
	version.Package = bi.Path
	for _, dep := range bi.Deps {
		if dep.Path == buildkitModule {
			version.Version = dep.Version
			if dep.Replace != nil && dep.Replace.Version != "" {
				version.Version = dep.Replace.Version
			}
		}
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			version.Revision = s.Value
		}
	}
}

// versionString is what --version prints.
func versionString() string {
	s := "BuildKit " + version.Version + " with lade's exporters"
	if version.Revision != "" {
		s += ", revision " + version.Revision
	}
	return s
}
