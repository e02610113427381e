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
	// pullLine is a cache blob fetched lazily under a cached step's vertex
	// (BuildKit shows it instead of CACHED when the export needs the blob).
	pullLine = regexp.MustCompile(`^#(\d+) sha256:[0-9a-f]{64} .*done$`)
	doneLine = regexp.MustCompile(`^#(\d+) DONE [0-9.]+s$`)
	anyLine  = regexp.MustCompile(`^#(\d+) `)
)

// cachedSteps reads buildctl's plain progress and returns each Dockerfile
// step ("[2/6] RUN ...") with whether it was a cache hit: marked CACHED, or
// showing nothing but lazily pulled cache blobs (a step that ran shows
// neither). (A step that ran anyway
// would also change the image's diffIDs, which the caller compares.)
func cachedSteps(out string) map[string]bool {
	names := map[string]string{}
	cached := map[string]bool{}
	other := map[string]bool{}
	pulls := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := stepLine.FindStringSubmatch(line); m != nil {
			names[m[1]] = m[2]
			continue
		}
		switch m := anyLine.FindStringSubmatch(line); {
		case m == nil, doneLine.MatchString(line):
		case cachedLine.MatchString(line):
			cached[m[1]] = true
		case pullLine.MatchString(line):
			pulls[m[1]] = true
		default:
			other[m[1]] = true
		}
	}
	steps := map[string]bool{}
	for id, name := range names {
		steps[name] = steps[name] || cached[id] || (pulls[id] && !other[id])
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
