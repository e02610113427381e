package main

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/moby/buildkit/version"
)

func TestSetVersion(t *testing.T) {
	pkg, ver, rev := version.Package, version.Version, version.Revision
	t.Cleanup(func() { version.Package, version.Version, version.Revision = pkg, ver, rev })
	bi := &debug.BuildInfo{
		Path: "github.com/lade-build/lade/cmd/lade-buildkitd",
		Deps: []*debug.Module{
			{Path: "github.com/containerd/containerd/v2", Version: "v2.3.6"},
			{Path: buildkitModule, Version: "v0.34.2"},
		},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abc"}},
	}

	version.Package, version.Version, version.Revision = "github.com/moby/buildkit", "v0.0.0+unknown", ""
	setVersion(bi)
	if version.Package != bi.Path || version.Version != "v0.34.2" || version.Revision != "0123abc" {
		t.Fatalf("from build info: %s %s %s", version.Package, version.Version, version.Revision)
	}
	if s := versionString(); !strings.Contains(s, "BuildKit v0.34.2") || !strings.Contains(s, "0123abc") {
		t.Fatalf("--version says %q", s)
	}

	// A version set at link time (-ldflags -X) is kept.
	version.Version, version.Revision = "v9.9.9", "linked"
	setVersion(bi)
	if version.Version != "v9.9.9" || version.Revision != "linked" {
		t.Fatalf("link-time version overwritten: %s %s", version.Version, version.Revision)
	}

	// The version this test binary reports: BuildKit's module from go.mod.
	version.Version, version.Revision = "v0.0.0+unknown", ""
	real, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info in the test binary")
	}
	setVersion(real)
	if !strings.HasPrefix(version.Version, "v0.34.") {
		t.Fatalf("the binary reports BuildKit %s, want the v0.34 lade is pinned to", version.Version)
	}
}
