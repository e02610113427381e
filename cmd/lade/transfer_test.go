package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lade-build/lade/internal/testutil"
	digest "github.com/opencontainers/go-digest"
)

// pushFixture exports the fixture's two-platform image into c's store as
// name, pushing it when push is set; it returns the root.
func pushFixture(t *testing.T, c *runner, fx fixture, name string, push bool) digest.Digest {
	t.Helper()
	out := "type=image,name=" + name
	if push {
		out += ",push=true,registry.insecure=true"
	}
	c.ok("export", "--progress", "quiet", "-f", fx.spec, "-o", out)
	return c.inspect(name).Digest
}

// writeConf writes a registries.conf and returns its path.
func writeConf(t *testing.T, conf string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "registries.conf")
	writeFile(t, p, conf, 0o644)
	return p
}

// TestPullShortNames pulls by short name from two registries of a search
// list (the image is only in the second), by alias, by platform, and as a
// --base; enforcing mode refuses an ambiguous name and a blocked registry
// is never asked.
func TestPullShortNames(t *testing.T) {
	fx := newFixture(t)
	r1 := testutil.StartRegistry(t, testutil.RegistryOptions{})
	r2 := testutil.StartRegistry(t, testutil.RegistryOptions{})
	src := newRunner(t)
	root := pushFixture(t, src, fx, r2.Host+"/team/app:1", true)
	conf := writeConf(t, fmt.Sprintf(`unqualified-search-registries = [%q, %q]
short-name-mode = "permissive"

[aliases]
"short" = "%s/team/app"

[[registry]]
prefix = "%s/blocked"
blocked = true

[[registry]]
prefix = "example.invalid/team"
location = "%s/team"

[[registry.mirror]]
location = "%s/mirror"
`, r1.Host, r2.Host, r2.Host, r1.Host, r2.Host, r1.Host))

	p := newRunner(t)
	out := p.ok("--registries-conf", conf, "pull", "--progress", "quiet", "team/app:1")
	if want := fmt.Sprintf("%s/team/app:1 %s\n", r2.Host, root); out != want {
		t.Fatalf("pull team/app:1 printed %q, want %q", out, want)
	}
	if r1.Count(http.MethodHead, testutil.KindManifest)+r1.Count(http.MethodGet, testutil.KindManifest) == 0 {
		t.Error("the first search registry was not tried")
	}
	if got := p.inspect(r2.Host + "/team/app:1").Digest; got != root {
		t.Errorf("pulled %s, pushed %s", got, root)
	}
	p.checkClean()

	// An alias, with a tag; CONTAINERS_REGISTRIES_CONF works as the flag.
	r2.ResetCounts()
	a := newRunner(t)
	a.env = []string{"CONTAINERS_REGISTRIES_CONF=" + conf}
	out = a.ok("pull", "--progress", "quiet", "--platform", "linux/arm64", "short:1")
	arm := src.inspect(r2.Host + "/team/app:1").Images[1]
	if want := fmt.Sprintf("%s/team/app:1 %s\n", r2.Host, arm.Manifest.Digest); arm.Platform != "linux/arm64" || out != want {
		t.Fatalf("pull --platform linux/arm64 short:1 printed %q, want %q", out, want)
	}
	if n := r1.Count(http.MethodGet, testutil.KindBlob); n != 0 {
		t.Errorf("an alias still asked the first search registry for %d blobs", n)
	}
	a.checkClean()

	// --base resolves short names the same way.
	top := filepath.Join(fx.dir, "top")
	writeFile(t, filepath.Join(top, "etc/motd"), "on a short-named base\n", 0o644)
	a.ok("export", "--progress", "quiet", "--base", "docker://team/app:1", "--platform", "linux/arm64",
		"-o", "type=image,name=onbase:1", top)
	if got := a.inspect("onbase:1").Images[0].Layers; len(got) != len(arm.Layers)+1 || got[0].Digest != arm.Layers[0].Digest {
		t.Errorf("image on base team/app:1 has layers %v, want the base's %v and one more", got, arm.Layers)
	}

	// lade commit --base too.
	a.ok("commit", "--progress", "quiet", "--base", "docker://short:1", "--platform", "linux/arm64",
		"--rootfs", fx.layers[2], "committed:1")
	if got := a.inspect("committed:1").Images[0].Layers; len(got) < len(arm.Layers) || got[0].Digest != arm.Layers[0].Digest {
		t.Errorf("commit on base short:1 has layers %v, want the base's %v first", got, arm.Layers)
	}

	// A [[registry]] location with a mirror: the mirror (which lacks the
	// image) is tried first, then the rewritten location; the image is
	// stored under the name asked for.
	r1.ResetCounts()
	out = a.ok("pull", "--progress", "quiet", "example.invalid/team/app:1")
	if want := "example.invalid/team/app:1 " + root.String() + "\n"; out != want {
		t.Errorf("pull through a location printed %q, want %q", out, want)
	}
	if r1.Count(http.MethodHead, testutil.KindManifest)+r1.Count(http.MethodGet, testutil.KindManifest) == 0 {
		t.Error("the mirror was not tried first")
	}

	enforcing := writeConf(t, fmt.Sprintf("unqualified-search-registries = [%q, %q]\n", r1.Host, r2.Host))
	r := newRunner(t).fail("ambiguous", "--registries-conf", enforcing, "pull", "team/app:1")
	for _, cand := range []string{r1.Host + "/team/app:1", r2.Host + "/team/app:1"} {
		if !strings.Contains(r.stderr, cand) {
			t.Errorf("the ambiguity error does not list %s: %s", cand, r.stderr)
		}
	}

	r1.ResetCounts()
	newRunner(t).fail("blocked", "--registries-conf", conf, "pull", r1.Host+"/blocked/app:1")
	src.fail("blocked", "--registries-conf", conf, "copy", r2.Host+"/team/app:1", "docker://"+r1.Host+"/blocked/app:1")
	if n := r1.Count(http.MethodGet, testutil.KindBase) + r1.Count(http.MethodHead, testutil.KindManifest); n != 0 {
		t.Errorf("a blocked registry got %d requests", n)
	}
	newRunner(t).fail("unknown key", "--registries-conf", writeConf(t, "unqualified-search-registry = []\n"), "pull", "x")
}

// TestCopyRoundTrip copies store -> oci-archive -> registry -> another
// repository of the registry -> a fresh store and checks every digest
// with skopeo; the same-registry copy mounts blobs and reads none.
func TestCopyRoundTrip(t *testing.T) {
	testutil.RequireTool(t, "skopeo")
	fx := newFixture(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	c := newRunner(t)
	root := pushFixture(t, c, fx, "app:1", false)
	tar := filepath.Join(t.TempDir(), "app.tar")
	ref := reg.Host + "/rt/app:1"

	c.ok("copy", "--progress", "quiet", "--all", "app:1", "oci-archive:"+tar+":1")
	if got := skopeoDigest(t, "oci-archive:"+tar+":1"); got != root {
		t.Fatalf("oci-archive has %s, store %s", got, root)
	}
	out := c.ok("copy", "--progress", "quiet", "--all", "oci-archive:"+tar+":1", "docker://"+ref)
	if got := skopeoDigest(t, "docker://"+ref, "--tls-verify=false"); got != root || !strings.Contains(out, root.String()) {
		t.Fatalf("registry has %s (lade printed %q), store %s", got, out, root)
	}

	reg.ResetCounts()
	other := reg.Host + "/other/app:1"
	c.ok("copy", "--progress", "quiet", "--all", "docker://"+ref, "docker://"+other)
	if got := skopeoDigest(t, "docker://"+other, "--tls-verify=false"); got != root {
		t.Fatalf("copy between repositories: %s, want %s", got, root)
	}
	if reg.Mounts() == 0 || reg.Uploads() != 0 || reg.Count(http.MethodGet, testutil.KindBlob) != 0 {
		t.Errorf("copy between repositories of one registry: %d mounts, %d uploads, %d blob reads; want mounts only",
			reg.Mounts(), reg.Uploads(), reg.Count(http.MethodGet, testutil.KindBlob))
	}

	d := newRunner(t)
	out = d.ok("copy", "--progress", "quiet", "--all", "docker://"+other, "copied:1")
	if got := d.inspect("copied:1").Digest; got != root || out != "docker.io/library/copied:1 "+root.String()+"\n" {
		t.Fatalf("fresh store: %s (printed %q), want %s", got, out, root)
	}
	d.checkClean()
	src := c.inspect("app:1")
	if got := d.inspect("copied:1"); jsonString(got.Images) != jsonString(src.Images) {
		t.Errorf("copied image differs:\n%s\nwant\n%s", jsonString(got.Images), jsonString(src.Images))
	}

	// Without --all only this host's platform is copied: its manifest.
	host := filepath.Join(t.TempDir(), "layout")
	d.ok("copy", "--progress", "quiet", "copied:1", "oci:"+host+":host")
	if got := skopeoDigest(t, "oci:"+host+":host"); got != src.Images[0].Manifest.Digest && got != src.Images[1].Manifest.Digest {
		t.Errorf("copy without --all wrote %s, not one platform's manifest", got)
	}
	d.ok("copy", "--progress", "quiet", "--platform", "linux/arm64", "copied:1", "docker-archive:"+filepath.Join(t.TempDir(), "d.tar")+":arm:1")
	d.fail("no manifest for platform linux/s390x", "copy", "--platform", "linux/s390x", "copied:1", "oci:"+host+":s390x")
}

// TestCopyKilled stops a copy from a registry while one layer is being
// fetched, with SIGINT and then SIGKILL. After SIGINT lade check is
// clean; after SIGKILL it lists only the dead process's lease and ingest
// (as for a killed export, see internal/reliability), never a corrupt or
// missing blob. A second copy fetches only the blob the first did not
// commit, and lade prune then leaves a clean store.
func TestCopyKilled(t *testing.T) {
	fx := newFixture(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	c := newRunner(t)
	ref := reg.Host + "/kill/app:1"
	root := pushFixture(t, c, fx, ref, true)
	img := c.inspect(ref)
	blocked := img.Images[0].Layers[0].Digest
	leaves := map[digest.Digest]bool{}
	for _, p := range img.Images {
		for _, l := range p.Layers {
			leaves[l.Digest] = true
		}
	}
	total := 2 + len(leaves) // two configs and the distinct layers

	hold := make(chan struct{})
	defer close(hold)
	reg.SetFault(func(r *http.Request) (int, bool) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+blocked.String()) {
			select {
			case <-hold:
			case <-r.Context().Done():
			}
		}
		return 0, false
	})
	d := newRunner(t)
	committed := func() int {
		if _, err := os.Stat(filepath.Join(d.root, "content", "blobs")); err != nil {
			return 0
		}
		return storeBlobs(t, d.root).count
	}
	for _, sig := range []os.Signal{os.Interrupt, os.Kill} {
		stopCopyMidway(t, d, ref, sig, func() bool {
			ingests, _ := os.ReadDir(filepath.Join(d.root, "content", "ingest"))
			return committed() >= total-1 && len(ingests) > 0
		})
		if n := committed(); n != total-1 {
			t.Fatalf("after %v the store has %d blobs, want %d", sig, n, total-1)
		}
		if names := d.images(); len(names) != 0 {
			t.Errorf("a copy stopped by %v named %v", sig, names)
		}
		if sig == os.Interrupt {
			d.checkClean()
			continue
		}
		r := d.run("check")
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			if !strings.HasPrefix(line, "ingest ") && !strings.HasPrefix(line, "lease ") {
				t.Errorf("lade check after SIGKILL: %q is neither an ingest nor a lease\n%s", line, r)
			}
		}
	}
	reg.SetFault(nil)

	reg.ResetCounts()
	d.ok("copy", "--progress", "quiet", "--all", "docker://"+ref, "copied:1")
	if n := reg.Count(http.MethodGet, testutil.KindBlob); n != 1 {
		t.Errorf("the second copy fetched %d blobs, want 1 (the one the stopped copies did not commit)", n)
	}
	if got := d.inspect("copied:1").Digest; got != root {
		t.Errorf("copied %s, want %s", got, root)
	}
	d.ok("prune")
	d.checkClean()
}

// stopCopyMidway starts lade copy --all docker://ref into d's store, waits
// until ready reports true and sends sig.
func stopCopyMidway(t *testing.T, d *runner, ref string, sig os.Signal, ready func() bool) {
	t.Helper()
	cmd := exec.Command(ladeBin, "--root", d.root, "copy", "--progress", "quiet", "--all", "docker://"+ref, "copied:1")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !ready() {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the copy did not commit the blobs not held back and start the last one within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatalf("the copy stopped by %v exited 0", sig)
	}
}

// TestPullAuth pulls from a registry with basic auth: the docker config's
// credentials work as for pushes; without them the error says where
// credentials come from and shows no secret.
func TestPullAuth(t *testing.T) {
	fx := newFixture(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{Auth: true})
	ref := reg.Host + "/private/app:1"
	cfg := "DOCKER_CONFIG=" + dockerConfig(t, reg.Host, reg.User, reg.Password)
	c := newRunner(t)
	c.env = []string{cfg}
	root := pushFixture(t, c, fx, ref, true)

	p := newRunner(t)
	p.env = []string{cfg}
	if out := p.ok("pull", "--progress", "quiet", ref); out != ref+" "+root.String()+"\n" {
		t.Errorf("pull printed %q", out)
	}
	r := newRunner(t).fail("docker login", "pull", ref)
	if strings.Contains(r.stderr, reg.Password) {
		t.Errorf("the error shows the password: %s", r.stderr)
	}
}
