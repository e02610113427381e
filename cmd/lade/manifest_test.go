package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lade-build/lade/exporter/containerd/containerdtest"
	"github.com/lade-build/lade/internal/testutil"
	"github.com/lade-build/lade/manifestlist"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestManifest builds a list from a store image, an OCI layout, a docker
// archive and a registry image, with a zstd variant of the arm64 instance,
// annotates it, removes an instance and pushes it to a real registry:
// skopeo lists every instance and skopeo copy --override-arch arm64 picks
// the arm64 (gzip) one, which runs.
func TestManifest(t *testing.T) {
	testutil.RequireTool(t, "skopeo", "umoci", "runc", "busybox")
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	c := commitRunner(t)
	tmp := t.TempDir()
	layout, archive := filepath.Join(tmp, "layout"), filepath.Join(tmp, "s390x.tar")
	commitBusybox(t, c, "bb-arm64:1", "--platform", "linux/arm64", "--cmd", `["/bin/echo", "arm64 instance"]`)
	commitBusybox(t, c, "bb-amd64:1", "--platform", "linux/amd64", "--cmd", `["/bin/echo", "amd64 instance"]`)
	c.ok("save", "--progress", "quiet", "bb-amd64:1", "-o", "type=oci,tar=false,dest="+layout+",name=bb:amd64")
	commitBusybox(t, c, "bb-s390x:1", "--platform", "linux/s390x")
	c.ok("save", "--progress", "quiet", "bb-s390x:1", "-o", "type=docker,dest="+archive)
	commitBusybox(t, c, "bb-ppc:1", "--platform", "linux/ppc64le")
	c.ok("save", "--progress", "quiet", "bb-ppc:1", "-o", "type=image,name="+reg.Host+"/bb:ppc,push=true")

	c.ok("manifest", "create", "--progress", "quiet", "list:1", "oci:"+layout+":amd64")
	c.ok("manifest", "add", "--progress", "quiet", "--add-compression", "zstd", "list:1", "bb-arm64:1")
	c.ok("manifest", "add", "--progress", "quiet", "list:1", "docker-archive:"+archive)
	c.ok("manifest", "add", "--progress", "quiet", "--annotation", "org.example.from=registry", "list:1", "docker://"+reg.Host+"/bb:ppc")
	arm := c.inspect("bb-arm64:1").Digest
	c.ok("manifest", "annotate", "--annotation", "org.example.k=v", "list:1", arm.String())
	c.ok("manifest", "annotate", "--os-version", "1.2", "list:1", "docker-archive:"+archive)
	c.ok("manifest", "annotate", "--index", "--annotation", "org.opencontainers.image.title=lade list", "list:1")
	ppc := c.inspect("bb-ppc:1").Digest
	c.ok("manifest", "remove", "list:1", ppc.String())

	idx := manifestIndex(t, c, "list:1")
	want := "linux/amd64 linux/arm64 linux/arm64+zstd linux/s390x"
	if got := describeInstances(idx); got != want || idx.Annotations["org.opencontainers.image.title"] != "lade list" {
		t.Fatalf("list %s (annotations %v), want %s", got, idx.Annotations, want)
	}
	if idx.Manifests[1].Digest != arm || idx.Manifests[1].Annotations["org.example.k"] != "v" || idx.Manifests[3].Platform.OSVersion != "1.2" {
		t.Errorf("instances %s", jsonString(idx.Manifests))
	}

	ref := reg.Host + "/list:1"
	pushed := strings.TrimSpace(c.ok("manifest", "push", "--progress", "quiet", "list:1", ref))
	var raw ocispec.Index
	mustJSON(t, testutil.Run(t, "skopeo", "inspect", "--tls-verify=false", "--raw", "docker://"+ref), &raw)
	if pushed != c.inspect("list:1").Digest.String() || skopeoDigest(t, "docker://"+ref, "--tls-verify=false").String() != pushed {
		t.Errorf("pushed %s, list is %s", pushed, c.inspect("list:1").Digest)
	}
	for _, m := range raw.Manifests {
		testutil.Run(t, "skopeo", "inspect", "--tls-verify=false", "--raw", "docker://"+reg.Host+"/list@"+m.Digest.String())
	}
	if describeInstances(raw) != want {
		t.Errorf("registry list %s, want %s", describeInstances(raw), want)
	}

	out := filepath.Join(tmp, "arm64")
	testutil.Run(t, "skopeo", "copy", "-q", "--src-tls-verify=false", "--override-arch", "arm64", "docker://"+ref, "oci:"+out+":tag")
	var got ocispec.Index
	b, err := os.ReadFile(filepath.Join(out, "index.json"))
	must(t, err)
	mustJSON(t, string(b), &got)
	if got.Manifests[0].Digest != arm {
		t.Errorf("skopeo copy --override-arch arm64 copied %s, want the arm64 instance %s", got.Manifests[0].Digest, arm)
	}
	bundle := filepath.Join(tmp, "bundle")
	testutil.Run(t, "umoci", "unpack", "--image", out+":tag", bundle)
	if got := runBundle(t, bundle); got != "arm64 instance\n" {
		t.Errorf("the copied arm64 image printed %q", got)
	}
	c.checkClean()
}

// TestManifestDocker builds a Docker manifest list: OCI instances are
// converted, variants and annotations are refused, and the pushed list is
// a Docker manifest list.
func TestManifestDocker(t *testing.T) {
	testutil.RequireTool(t, "skopeo", "busybox")
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	c := commitRunner(t)
	commitBusybox(t, c, "bb-arm64:1", "--platform", "linux/arm64")
	commitBusybox(t, c, "bb-amd64:1", "--platform", "linux/amd64")
	c.ok("manifest", "create", "--progress", "quiet", "--format", "docker", "dlist:1", "bb-arm64:1", "bb-amd64:1")
	c.fail("variants need an OCI list", "manifest", "add", "--progress", "quiet", "--add-compression", "zstd", "dlist:1", "bb-amd64:1")
	c.fail("carries no annotations", "manifest", "annotate", "--progress", "quiet", "--index", "--annotation", "a=b", "dlist:1")
	c.fail("exists: use lade manifest add", "manifest", "create", "--progress", "quiet", "dlist:1")
	c.fail("not a manifest list", "manifest", "inspect", "bb-amd64:1")
	ref := reg.Host + "/dlist:1"
	c.ok("manifest", "push", "--progress", "quiet", "--rm", "dlist:1", ref)
	var raw ocispec.Index
	mustJSON(t, testutil.Run(t, "skopeo", "inspect", "--tls-verify=false", "--raw", "docker://"+ref), &raw)
	if raw.MediaType != "application/vnd.docker.distribution.manifest.list.v2+json" || describeInstances(raw) != "linux/arm64 linux/amd64" {
		t.Errorf("pushed %s %s", raw.MediaType, describeInstances(raw))
	}
	for _, m := range raw.Manifests {
		if m.MediaType != "application/vnd.docker.distribution.manifest.v2+json" {
			t.Errorf("instance %s is a %s", m.Digest, m.MediaType)
		}
	}
	if slices.Contains(c.images(), "docker.io/library/dlist:1") {
		t.Error("push --rm left the list in the store")
	}
	c.checkClean()
}

// TestManifestContainerd pushes a list into containerd: ctr lists it and
// runs the host's instance.
func TestManifestContainerd(t *testing.T) {
	testutil.RequireTool(t, "ctr", "busybox")
	sock := containerdtest.Start(t)
	c := commitRunner(t)
	commitBusybox(t, c, "bb-arm64:1", "--platform", "linux/arm64")
	commitBusybox(t, c, "bb-amd64:1", "--platform", "linux/amd64", "--cmd", `["/bin/echo", "from the list"]`)
	c.ok("manifest", "create", "--progress", "quiet", "--annotation", "org.example.list=1", "list:1", "bb-arm64:1", "bb-amd64:1")
	if idx := manifestIndex(t, c, "list:1"); idx.Annotations["org.example.list"] != "1" || idx.Manifests[0].Annotations != nil {
		t.Errorf("create --annotation: list %v, instance %v", idx.Annotations, idx.Manifests[0].Annotations)
	}
	c.ok("manifest", "push", "--progress", "quiet", "list:1", "containerd://"+sock+"?namespace=lade-e2e")
	ctr := func(args ...string) string {
		return testutil.Run(t, "ctr", append([]string{"-a", sock, "-n", "lade-e2e"}, args...)...)
	}
	if out := ctr("images", "ls"); !strings.Contains(out, "docker.io/library/list:1") || !strings.Contains(out, "linux/amd64,linux/arm64") {
		t.Errorf("ctr images ls:\n%s", out)
	}
	if out := ctr("run", "--rm", "docker.io/library/list:1", "lade-list-e2e"); out != "from the list\n" {
		t.Errorf("ctr run printed %q", out)
	}
}

// manifestIndex returns lade manifest inspect LIST.
func manifestIndex(t *testing.T, c *runner, name string) ocispec.Index {
	t.Helper()
	var idx ocispec.Index
	out := c.ok("manifest", "inspect", name)
	if err := json.Unmarshal([]byte(out), &idx); err != nil {
		t.Fatalf("manifest inspect: %v\n%s", err, out)
	}
	if digest.FromString(strings.TrimSuffix(out, "\n")) != c.inspect(name).Digest {
		t.Errorf("manifest inspect does not print the list's own bytes")
	}
	return idx
}

// describeInstances lists the instances' platforms, "+zstd" marking
// compression variants.
func describeInstances(idx ocispec.Index) string {
	var out []string
	for _, m := range idx.Manifests {
		p := m.Platform.OS + "/" + m.Platform.Architecture
		if m.Platform.Variant != "" {
			p += "/" + m.Platform.Variant
		}
		if m.Annotations[manifestlist.AnnotationZstd] == "true" {
			p += "+zstd"
		}
		out = append(out, p)
	}
	return strings.Join(out, " ")
}
