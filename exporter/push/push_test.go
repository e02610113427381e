package push

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/lade-build/lade/internal/testutil"
	"github.com/lade-build/lade/progress"
)

// fastRetries are options that retry quickly, for tests.
var fastRetries = Options{RetryDelay: 5 * time.Millisecond}

// skopeoDigest returns the digest of the raw manifest skopeo reads for ref.
func skopeoDigest(t *testing.T, ref string) digest.Digest {
	t.Helper()
	raw := testutil.Run(t, "skopeo", "inspect", "--tls-verify=false", "--raw", "docker://"+ref)
	return digest.FromString(raw)
}

func TestPushSkopeoPushAgainPull(t *testing.T) {
	testutil.RequireTool(t, "skopeo")
	ctx := context.Background()
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	store := newStore(t)
	img := writeImage(t, store)
	ref := reg.Host + "/lade/app:v1"

	rec := &progress.Recorder{}
	opts := fastRetries
	opts.Progress = rec
	if err := Push(ctx, store, img.root, ref, opts); err != nil {
		t.Fatalf("Push: %v", err)
	}
	if got := skopeoDigest(t, ref); got != img.root.Digest {
		t.Fatalf("skopeo sees %s, pushed %s", got, img.root.Digest)
	}
	// One vertex per blob, each pushed; the shared layer once.
	statuses := finalStatuses(rec)
	if len(statuses) != len(img.blobs) {
		t.Errorf("%d progress vertices, want %d: %v", len(statuses), len(img.blobs), statuses)
	}
	for _, b := range img.blobs {
		if s := statuses["push "+b.Digest.String()]; s != StatusPushed {
			t.Errorf("%s: status %q, want %q", b.Digest, s, StatusPushed)
		}
	}
	// 5 blobs (shared base, 2 layers, 2 configs); manifests are not blob uploads.
	if n := reg.Uploads(); n != 5 {
		t.Errorf("first push: %d blob uploads, want 5", n)
	}
	if n := reg.Count(http.MethodPut, testutil.KindManifest); n != 3 {
		t.Errorf("first push: %d manifest PUTs, want 3", n)
	}

	reg.ResetCounts()
	rec = &progress.Recorder{}
	opts.Progress = rec
	if err := Push(ctx, store, img.root, ref, opts); err != nil {
		t.Fatalf("second Push: %v", err)
	}
	if n := reg.Uploads() + reg.Count(http.MethodPost, testutil.KindBlobUpload); n != 0 {
		t.Errorf("second push started %d uploads, want 0", n)
	}
	for id, s := range finalStatuses(rec) {
		if s != StatusExists {
			t.Errorf("second push: %s status %q, want %q", id, s, StatusExists)
		}
	}

	fresh := newStore(t)
	rec = &progress.Recorder{}
	opts.Progress = rec
	root, err := Pull(ctx, ref, fresh, opts)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if root.Digest != img.root.Digest {
		t.Fatalf("Pull root %s, want %s", root.Digest, img.root.Digest)
	}
	requireAll(t, fresh, img)
	for id, s := range finalStatuses(rec) {
		if s != StatusPulled {
			t.Errorf("pull: %s status %q, want %q", id, s, StatusPulled)
		}
	}
	info, err := fresh.Info(ctx, img.root.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Labels["containerd.io/distribution.source.127.0.0.1"]; got != "lade/app" {
		t.Errorf("root source label = %q, want lade/app", got)
	}
	if got := info.Labels["containerd.io/gc.ref.content.m.1"]; got == "" {
		t.Errorf("root has no gc.ref label for its second manifest: %v", info.Labels)
	}
}

func TestPushProgressCountsBytes(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	store := newStore(t)
	img := writeImage(t, store)
	rec := &progress.Recorder{}
	opts := fastRetries
	opts.Progress = rec
	if err := Push(context.Background(), store, img.root, reg.Host+"/lade/progress:v1", opts); err != nil {
		t.Fatal(err)
	}
	base := img.blobs[0]
	var final progress.Event
	for _, e := range rec.Events() {
		if e.ID == "push "+base.Digest.String() && e.Done() {
			final = e
		}
	}
	if final.Current != base.Size || final.Total != base.Size {
		t.Fatalf("base layer final progress %d/%d, want %d/%d", final.Current, final.Total, base.Size, base.Size)
	}
	if !strings.HasPrefix(final.Name, "push layer sha256:") {
		t.Fatalf("vertex name %q", final.Name)
	}
}

func TestPushByDigest(t *testing.T) {
	testutil.RequireTool(t, "skopeo")
	ctx := context.Background()
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	store := newStore(t)
	img := writeImage(t, store)
	opts := fastRetries
	opts.ByDigest = true
	if err := Push(ctx, store, img.root, reg.Host+"/lade/bydigest", opts); err != nil {
		t.Fatalf("Push by digest: %v", err)
	}
	if got := skopeoDigest(t, reg.Host+"/lade/bydigest@"+img.root.Digest.String()); got != img.root.Digest {
		t.Fatalf("skopeo sees %s, want %s", got, img.root.Digest)
	}
	if tags := tagList(t, reg.Host, "lade/bydigest"); len(tags) != 0 {
		t.Fatalf("push by digest created tags %v", tags)
	}
	// name@digest without ByDigest also pushes by digest.
	if err := Push(ctx, store, img.root, reg.Host+"/lade/other@"+img.root.Digest.String(), fastRetries); err != nil {
		t.Fatalf("Push name@digest: %v", err)
	}
	// Pull by digest.
	root, err := Pull(ctx, reg.Host+"/lade/other@"+img.root.Digest.String(), newStore(t), fastRetries)
	if err != nil || root.Digest != img.root.Digest {
		t.Fatalf("Pull by digest: %v, %s", err, root.Digest)
	}
}

// tagList returns the tags of repo (none if the registry does not know
// the repository).
func tagList(t *testing.T, host, repo string) []string {
	t.Helper()
	resp, err := http.Get("http://" + host + "/v2/" + repo + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var list struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	return list.Tags
}

func TestPushTLS(t *testing.T) {
	ctx := context.Background()
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true})
	store := newStore(t)
	img := writeImage(t, store)
	ref := reg.Host + "/lade/tls:v1"

	opts := fastRetries
	err := Push(ctx, store, img.root, ref, opts)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("push without the CA: %v, want a certificate error", err)
	}
	if n := reg.Count(http.MethodHead, testutil.KindBlob); n != 0 {
		t.Fatalf("untrusted registry got %d requests", n)
	}
	opts.CAFile = reg.CAFile
	if err := Push(ctx, store, img.root, ref, opts); err != nil {
		t.Fatalf("push with CAFile: %v", err)
	}
	insecure := fastRetries
	insecure.Insecure = true
	if _, err := Pull(ctx, ref, newStore(t), insecure); err != nil {
		t.Fatalf("insecure pull: %v", err)
	}
}

func TestPushCrossRepoMount(t *testing.T) {
	ctx := context.Background()
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	store := newStore(t)
	img := writeImage(t, store)
	if err := Push(ctx, store, img.root, reg.Host+"/lade/a:v1", fastRetries); err != nil {
		t.Fatal(err)
	}
	// A pull from lade/a labels every blob with its source.
	pulled := newStore(t)
	if _, err := Pull(ctx, reg.Host+"/lade/a:v1", pulled, fastRetries); err != nil {
		t.Fatal(err)
	}
	reg.ResetCounts()
	rec := &progress.Recorder{}
	opts := fastRetries
	opts.Progress = rec
	if err := Push(ctx, pulled, img.root, reg.Host+"/lade/b:v1", opts); err != nil {
		t.Fatal(err)
	}
	if n, m := reg.Uploads(), reg.Mounts(); n != 0 || m != 5 {
		t.Fatalf("push to lade/b: %d uploads, %d mounts; want 0 and 5", n, m)
	}
	mounted := 0
	for _, s := range finalStatuses(rec) {
		if s == StatusMounted {
			mounted++
		}
	}
	if mounted != 5 {
		t.Fatalf("%d blobs reported mounted, want 5: %v", mounted, finalStatuses(rec))
	}
}

func TestPullSingleManifest(t *testing.T) {
	ctx := context.Background()
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	store := newStore(t)
	img := writeImage(t, store)
	manifest := img.blobs[3] // amd64: base, layer, config, manifest
	manifest.Platform = nil
	ref := reg.Host + "/lade/single:amd64"
	if err := Push(ctx, store, manifest, ref, fastRetries); err != nil {
		t.Fatal(err)
	}
	fresh := newStore(t)
	root, err := Pull(ctx, ref, fresh, fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	if root.Digest != manifest.Digest || root.MediaType != manifest.MediaType {
		t.Fatalf("root %+v, want %s", root, manifest.Digest)
	}
	requireAll(t, fresh, testImage{root: manifest, blobs: img.blobs[:4]})
	if _, err := Pull(ctx, reg.Host+"/lade/single:missing", newStore(t), fastRetries); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("pull of a missing tag: %v", err)
	}
}
