//go:build integration

package frontendtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/exporter/containerd/containerdtest"
	"github.com/lade-build/lade/internal/testutil"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ctdNamespace is the containerd namespace of the containerd worker, stock
// buildkitd's default.
const ctdNamespace = "buildkit"

// TestContainerdWorker: lade-buildkitd with --oci-worker=false
// --containerd-worker=true on Debian's containerd, driven by the stock
// buildctl. The RUN steps run as containerd tasks; type=image with
// unpack=true, name-canonical=true and push=true names the image (and
// name@digest) in containerd's "buildkit" namespace without the empty RUN
// layer, unpacks it into the overlayfs snapshotter (its top chain
// snapshot exists and the config's gc label holds it), pushes the same
// digest, and ctr runs it; store=false names nothing. Then: unpack with
// rewrite-timestamp, a lazy base image, and a two-platform index.
func TestContainerdWorker(t *testing.T) {
	sock := containerdtest.Start(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	d := startDaemon(t, lade, "", "--oci-worker=false", "--containerd-worker=true",
		"--containerd-worker-addr", sock, "--containerd-worker-snapshotter", "overlayfs")
	wctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	workers, err := d.buildctl(wctx, "debug", "workers", "-v")
	if err != nil || !hasLabel(workers, "org.mobyproject.buildkit.worker.executor", "containerd") {
		t.Fatalf("buildctl debug workers: %v\n%s", err, workers)
	}

	bctx := contextDir(t, mainDockerfile, nil)
	ref := reg.Host + "/lade/ctd:v1"
	out := d.mustBuild(t, bctx, "--output",
		"type=image,name="+ref+",unpack=true,name-canonical=true,push=true,registry.insecure=true")
	mustContain(t, "progress", out, "exporting to image", "exporting with lade", "compressing layer", "dropping empty layer", "unpacking to "+ref, "pushing manifest for "+ref)

	c, err := ctd.New(sock, ctd.WithDefaultNamespace(ctdNamespace))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	img, err := c.ImageService().Get(ctx, ref)
	if err != nil {
		t.Fatalf("image %s in namespace %s: %v\n%s", ref, ctdNamespace, err, ctr(t, sock, ctdNamespace, "images", "ls"))
	}
	listed := ctr(t, sock, ctdNamespace, "images", "ls", "-q")
	for _, name := range []string{ref, ref + "@" + img.Target.Digest.String()} {
		if !strings.Contains(listed, name+"\n") {
			t.Errorf("ctr images ls does not list %s:\n%s", name, listed)
		}
	}
	pushed := strings.TrimSpace(skopeo(t, "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+ref))
	if pushed != img.Target.Digest.String() {
		t.Errorf("pushed digest %s, containerd's image %s", pushed, img.Target.Digest)
	}
	checkUnpacked(t, c, img, "overlayfs", mainLayers)
	if got := ctr(t, sock, ctdNamespace, "run", "--rm", ref, "lade-ctd-run", "echo", "ok"); strings.TrimSpace(got) != "ok" {
		t.Errorf("ctr run printed %q, want ok", got)
	}

	out = d.mustBuild(t, bctx, "--output", "type=image,name=docker.io/lade/nostore:v1,store=false")
	mustContain(t, "progress", out, "exporting to image", "exporting with lade")
	if listed := ctr(t, sock, ctdNamespace, "images", "ls", "-q"); strings.Contains(listed, "lade/nostore") {
		t.Errorf("store=false named the image:\n%s", listed)
	}
	checkEpochOnContainerd(t, d, c, bctx)
	checkLazyBase(t, sock, reg.Host, ref)
	checkMultiPlatformUnpack(t, d, c)
}

// checkMultiPlatformUnpack: a two-platform image is named by its index,
// and unpack=true unpacks the host's platform.
func checkMultiPlatformUnpack(t *testing.T, d *daemon, c *ctd.Client) {
	t.Helper()
	name := "docker.io/lade/mp:v1"
	d.mustBuild(t, multiPlatformContext(t), "--opt", "platform=linux/amd64,linux/arm64", "--output", "type=image,name="+name+",unpack=true")
	img, err := c.ImageService().Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if img.Target.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("%s targets a %s, want an index", name, img.Target.MediaType)
	}
	checkUnpacked(t, c, img, "overlayfs", 2)
}

// checkLazyBase: a second daemon on the same containerd, in its own
// namespace (where none of the base image's blobs are), builds FROM the
// pushed image with COPY --link, so the base layers stay lazy until the
// export; unpack=true fetches them and unpacks every layer, and ctr runs
// the image.
func checkLazyBase(t *testing.T, sock, regHost, base string) {
	t.Helper()
	const ns = "lazy"
	d := startDaemon(t, lade, fmt.Sprintf("[registry.%q]\n  http = true\n", regHost), "--oci-worker=false",
		"--containerd-worker=true", "--containerd-worker-addr", sock, "--containerd-worker-namespace", ns)
	bctx := contextDir(t, "FROM "+base+"\nCOPY --link extra.txt /extra.txt\n", map[string]string{"extra.txt": "extra\n"})
	name := "docker.io/lade/lazy:v1"
	out := d.mustBuild(t, bctx, "--output", "type=image,name="+name+",unpack=true")
	mustContain(t, "progress", out, "unpacking to "+name)
	c, err := ctd.New(sock, ctd.WithDefaultNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	img, err := c.ImageService().Get(context.Background(), name)
	if err != nil {
		t.Fatalf("image %s in namespace %s: %v", name, ns, err)
	}
	checkUnpacked(t, c, img, "overlayfs", mainLayers+1)
	if got := ctr(t, sock, ns, "run", "--rm", name, "lade-ctd-lazy", "cat", "/extra.txt", "/done.txt"); got != "extra\ndone\n" {
		t.Errorf("ctr run printed %q", got)
	}
}

// checkEpochOnContainerd: with SOURCE_DATE_EPOCH and rewrite-timestamp,
// unpack=true unpacks the layers lade rewrote, and the containerd
// worker's layers are the OCI worker's (the same diffIDs).
func checkEpochOnContainerd(t *testing.T, d *daemon, c *ctd.Client, bctx string) {
	t.Helper()
	name := "docker.io/lade/epoch:v1"
	args := append(append([]string{}, epochOpt...), "--output", "type=image,name="+name+",unpack=true,rewrite-timestamp=true")
	d.mustBuild(t, bctx, args...)
	img, err := c.ImageService().Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	checkUnpacked(t, c, img, "overlayfs", mainLayers)

	onCtd := diffIDsOf(t, ociBuild(t, d, bctx, ",rewrite-timestamp=true", epochOpt...))
	onOCI := diffIDsOf(t, ociBuild(t, startDaemon(t, lade, ""), bctx, ",rewrite-timestamp=true", epochOpt...))
	if fmt.Sprint(onCtd) != fmt.Sprint(onOCI) {
		t.Errorf("diffIDs on the containerd worker %v, on the OCI worker %v", onCtd, onOCI)
	}
}

// checkUnpacked verifies that img, a single-platform image, has layers
// layers (for mainDockerfile, without its empty one), and that after a
// containerd GC its blobs and its top chain snapshot exist in the
// snapshotter, named in the config's gc label.
func checkUnpacked(t *testing.T, c *ctd.Client, img images.Image, snapshotter string, layers int) {
	t.Helper()
	ctx := context.Background()
	cs := c.ContentStore()
	mfst, err := images.Manifest(ctx, cs, img.Target, platforms.Default())
	if err != nil {
		t.Fatal(err)
	}
	b, err := content.ReadBlob(ctx, cs, mfst.Config)
	if err != nil {
		t.Fatal(err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(mfst.Layers) != layers || len(cfg.RootFS.DiffIDs) != layers {
		t.Fatalf("%d layers, %d diffIDs; want %d (the empty RUN dropped)", len(mfst.Layers), len(cfg.RootFS.DiffIDs), layers)
	}
	chainID := identity.ChainID(cfg.RootFS.DiffIDs).String()
	// A synchronous containerd GC, now that the export's lease is gone:
	// the image's gc labels alone must keep its blobs and snapshot.
	l, err := c.LeasesService().Create(ctx, leases.WithRandomID())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LeasesService().Delete(ctx, l, leases.SynchronousDelete); err != nil {
		t.Fatal(err)
	}
	if _, _, _, missing, err := images.Check(ctx, cs, img.Target, platforms.Default()); err != nil || len(missing) > 0 {
		t.Errorf("after GC: %v, missing %v", err, missing)
	}
	if _, err := c.SnapshotService(snapshotter).Stat(ctx, chainID); err != nil {
		t.Errorf("top chain snapshot %s in %s: %v", chainID, snapshotter, err)
	}
	info, err := cs.Info(ctx, mfst.Config.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Labels["containerd.io/gc.ref.snapshot."+snapshotter]; got != chainID {
		t.Errorf("config gc label names snapshot %q, want %s", got, chainID)
	}
	unpacked, err := ctd.NewImage(c, img).IsUnpacked(ctx, snapshotter)
	if err != nil || !unpacked {
		t.Errorf("containerd: unpacked=%v, %v", unpacked, err)
	}
}

// ctr runs Debian's ctr on the containerd at sock in namespace ns and
// returns its output.
func ctr(t *testing.T, sock, ns string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"-a", sock, "-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// hasLabel reports whether buildctl debug workers -v output lists the
// worker label key with value.
func hasLabel(out, key, value string) bool {
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == key && strings.TrimSpace(v) == value {
			return true
		}
	}
	return false
}

// TestBothWorkers: with --oci-worker=true and --containerd-worker=true the
// daemon runs both, and, as stock, the OCI worker is the default that
// builds: the image is not named in containerd.
func TestBothWorkers(t *testing.T) {
	sock := containerdtest.Start(t)
	d := startDaemon(t, lade, "", "--oci-worker=true", "--containerd-worker=true", "--containerd-worker-addr", sock)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := d.buildctl(ctx, "debug", "workers", "-v")
	if err != nil {
		t.Fatalf("buildctl debug workers: %v\n%s", err, out)
	}
	var executors []string
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == "org.mobyproject.buildkit.worker.executor" {
			executors = append(executors, strings.TrimSpace(v))
		}
	}
	if fmt.Sprint(executors) != "[oci containerd]" {
		t.Fatalf("worker executors %v, want [oci containerd] (the OCI worker first, the default):\n%s", executors, out)
	}
	d.mustBuild(t, contextDir(t, "FROM scratch\nCOPY busybox /bin/busybox\n", nil), "--output", "type=image,name=docker.io/lade/both:v1")
	if listed := ctr(t, sock, ctdNamespace, "images", "ls", "-q"); strings.Contains(listed, "lade/both") {
		t.Errorf("the build ran on the containerd worker, not the default OCI worker:\n%s", listed)
	}
}
