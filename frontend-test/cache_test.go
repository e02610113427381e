//go:build integration

package frontendtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lade-build/lade/internal/testutil"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	stepLine   = regexp.MustCompile(`^#(\d+) (\[[^\]]*\d+/\d+\] .*)$`)
	cachedLine = regexp.MustCompile(`^#(\d+) CACHED$`)
)

// cachedSteps reads buildctl's plain progress and returns each Dockerfile
// step ("[2/6] RUN ...") with whether it was a cache hit.
func cachedSteps(out string) map[string]bool {
	names := map[string]string{}
	steps := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m := stepLine.FindStringSubmatch(sc.Text()); m != nil {
			names[m[1]] = m[2]
			if _, ok := steps[m[2]]; !ok {
				steps[m[2]] = false
			}
		}
		if m := cachedLine.FindStringSubmatch(sc.Text()); m != nil && names[m[1]] != "" {
			steps[names[m[1]]] = true
		}
	}
	return steps
}

// TestInlineCacheWithDroppedEmptyLayer: an image pushed with
// --export-cache type=inline, whose empty RUN layer lade dropped, gives a
// fresh daemon cache hits for every step, the empty RUN and the steps after
// it included.
func TestInlineCacheWithDroppedEmptyLayer(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	ctx := contextDir(t, mainDockerfile, nil)
	ref := reg.Host + "/lade/cache:v1"
	first := startDaemon(t, lade, "")
	first.mustBuild(t, ctx, "--export-cache", "type=inline", "--output", "type=image,name="+ref+",push=true,registry.insecure=true")

	var cfg struct {
		RootFS ocispec.RootFS   `json:"rootfs"`
		Cache  *json.RawMessage `json:"moby.buildkit.cache.v0"`
	}
	raw := skopeo(t, "inspect", "--tls-verify=false", "--raw", "--config", "docker://"+ref)
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Cache == nil || len(cfg.RootFS.DiffIDs) != mainLayers {
		t.Fatalf("pushed config: inline cache present=%v, %d layers (want %d)", cfg.Cache != nil, len(cfg.RootFS.DiffIDs), mainLayers)
	}

	fresh := startDaemon(t, lade, fmt.Sprintf("[registry.%q]\n  http = true\n", reg.Host))
	tarPath := filepath.Join(t.TempDir(), "x.tar")
	out := fresh.mustBuild(t, ctx, "--import-cache", "type=registry,ref="+ref, "--output", "type=oci,dest="+tarPath)
	steps := cachedSteps(out)
	if len(steps) != mainSteps {
		t.Fatalf("found %d steps, want %d:\n%s", len(steps), mainSteps, out)
	}
	for name, hit := range steps {
		if !hit {
			t.Errorf("step %s was not a cache hit", name)
		}
	}
	if t.Failed() {
		t.Logf("build output:\n%s", out)
	}
	got := diffIDsOf(t, openLayoutTar(t, tarPath))
	if fmt.Sprint(got) != fmt.Sprint(cfg.RootFS.DiffIDs) {
		t.Fatalf("rebuilt from cache: diffIDs %v, pushed %v", got, cfg.RootFS.DiffIDs)
	}
}
