//go:build integration

package frontendtest

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/exporter/exportertest"
	"github.com/lade-build/lade/internal/testutil"
	digest "github.com/opencontainers/go-digest"
)

// Azurite's documented development account and key.
const (
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// TestCacheBackends: for every remote cache backend stock buildkitd has
// besides inline (TestInlineCacheWithDroppedEmptyLayer), a build on
// lade-buildkitd exports its cache with mode=max, and a second build of the
// same context on a fresh daemon (new root) imports it and runs nothing:
// every RUN step is marked CACHED (a build with no output), every step is a
// cache hit in a build to a type=oci tar too, and that image's layers (blob
// digests and diffIDs) are the first build's. Stock buildkitd imports
// lade's cache the same way (local-to-stock). The servers are
// real and local: the registry (docker-registry), s3rver 3.7.1 for s3,
// Azurite 3.37.0 for azblob, and for gha a fake of GitHub's cache service
// (API v2) keeping its blobs in Azurite (ghacache_test.go).
func TestCacheBackends(t *testing.T) {
	t.Run("registry", func(t *testing.T) {
		reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
		ref := reg.Host + "/lade/cache:buildcache"
		toml := fmt.Sprintf("[registry.%q]\n  http = true\n", reg.Host)
		cacheRoundTrip(t, lade, toml, "type=registry,ref="+ref+",mode=max", "type=registry,ref="+ref)
	})
	t.Run("local", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "cache")
		cacheRoundTrip(t, lade, "", "type=local,dest="+dir+",mode=max", "type=local,src="+dir)
	})
	t.Run("local-to-stock", func(t *testing.T) {
		// lade's cache is BuildKit's format: stock buildkitd imports it.
		dir := filepath.Join(t.TempDir(), "cache")
		cacheRoundTrip(t, stock, "", "type=local,dest="+dir+",mode=max", "type=local,src="+dir)
	})
	t.Run("s3", func(t *testing.T) {
		endpoint := startS3rver(t, "lade-cache")
		attrs := "type=s3,region=us-east-1,bucket=lade-cache,name=main,endpoint_url=" + endpoint +
			",access_key_id=S3RVER,secret_access_key=S3RVER,use_path_style=true"
		cacheRoundTrip(t, lade, "", attrs+",mode=max", attrs)
	})
	t.Run("azblob", func(t *testing.T) {
		az := startAzurite(t)
		// account_name is needed: BuildKit otherwise takes it from the
		// URL's host ("127") and Azurite refuses the signature.
		attrs := "type=azblob,account_url=" + az.accountURL + ",account_name=" + azuriteAccount +
			",secret_access_key=" + azuriteKey + ",container=lade-cache,name=main"
		cacheRoundTrip(t, lade, "", attrs+",mode=max", attrs)
	})
	t.Run("gha", func(t *testing.T) {
		gha := startGHACache(t, startAzurite(t))
		attrs := "type=gha,url_v2=" + gha.URL + ",token=" + gha.Token + ",scope=lade-test"
		cacheRoundTrip(t, lade, "", attrs+",mode=max", attrs)
		var layers, indexes int
		for _, k := range gha.Keys() {
			switch {
			case strings.HasPrefix(k, "buildkit-blob-1-sha256:"):
				layers++
			case strings.HasPrefix(k, "index-lade-test-1-"):
				indexes++
			}
		}
		if layers < mainLayers || indexes != 1 {
			t.Fatalf("gha cache holds %d layer blobs (want at least %d) and %d indexes (want 1): %v", layers, mainLayers, indexes, gha.Keys())
		}
	})
}

// cacheRoundTrip builds mainDockerfile on a lade-buildkitd configured with
// toml, exporting the cache with --export-cache export, then on a fresh
// daemon of kind importing it with --import-cache imp, and checks that
// the second build ran no step and gave the first one's layers (stock
// also keeps the empty layer lade drops).
func cacheRoundTrip(t *testing.T, kind, toml, export, imp string) {
	t.Helper()
	ctx := contextDir(t, mainDockerfile, nil)
	first := startDaemon(t, lade, toml)
	want := ociBuild(t, first, ctx, "", "--export-cache", export).verify(t)
	first.stop(t)

	// Without an output no layer blob is needed, so every step that is a
	// cache hit shows CACHED; a build whose export needs the blobs pulls
	// them lazily under the last step, which BuildKit then may show DONE.
	fresh := startDaemon(t, kind, toml)
	out := fresh.mustBuild(t, ctx, "--import-cache", imp)
	if cached, ran := runSteps(out); len(cached) != mainRuns || len(ran) != 0 {
		t.Errorf("RUN steps marked CACHED: %d, want %d; not marked CACHED: %v\n%s", len(cached), mainRuns, ran, out)
	}
	tarPath := filepath.Join(t.TempDir(), "fresh.tar")
	out = fresh.mustBuild(t, ctx, "--import-cache", imp, "--output", "type=oci,dest="+tarPath)
	steps := cachedSteps(out)
	if len(steps) != mainSteps {
		t.Fatalf("found %d steps, want %d:\n%s", len(steps), mainSteps, out)
	}
	for name, hit := range steps {
		if !hit {
			t.Errorf("step %s ran again: not a cache hit", name)
		}
	}
	got := openLayoutTar(t, tarPath).verify(t)
	if len(got) != 1 || len(want) != 1 {
		t.Fatalf("%d and %d images, want one each", len(want), len(got))
	}
	if a, b := nonEmptyLayers(want[0]), nonEmptyLayers(got[0]); fmt.Sprint(a) != fmt.Sprint(b) || len(a) != mainLayers {
		t.Errorf("layer blobs: first build %v, from cache %v (want %d)", a, b, mainLayers)
	}
	if a, b := want[0].DiffIDs, withoutEmpty(got[0].DiffIDs); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("diffIDs: first build %v, from cache %v", a, b)
	}
	if kind == lade && len(got[0].DiffIDs) != mainLayers {
		t.Errorf("from cache: %d layers, want %d (the empty one dropped)", len(got[0].DiffIDs), mainLayers)
	}
	if t.Failed() {
		t.Logf("build output:\n%s", out)
	}
}

// mainRuns is the number of RUN steps of mainDockerfile.
const mainRuns = 5

// runSteps returns the RUN steps in buildctl's plain progress out marked
// "#N CACHED", and the others.
func runSteps(out string) (cached, ran []string) {
	for _, line := range strings.Split(out, "\n") {
		m := stepLine.FindStringSubmatch(line)
		switch {
		case m == nil || !strings.Contains(m[2], "] RUN "):
		case strings.Contains(out, "\n#"+m[1]+" CACHED\n"):
			cached = append(cached, m[2])
		default:
			ran = append(ran, m[2])
		}
	}
	return cached, ran
}

// nonEmptyLayers are the blob digests of img's layers whose diffID is not
// the empty tar's.
func nonEmptyLayers(img exportertest.Image) []digest.Digest {
	var out []digest.Digest
	for i, l := range img.Manifest.Layers {
		if img.DiffIDs[i] != blobs.EmptyTarDiffID {
			out = append(out, l.Digest)
		}
	}
	return out
}

// azurite is a running Azurite blob service.
type azurite struct {
	accountURL string // http://127.0.0.1:PORT/devstoreaccount1
}

// startAzurite starts Azurite's blob service on 127.0.0.1 with its data in
// a test directory; it is stopped when the test ends.
func startAzurite(t *testing.T) *azurite {
	t.Helper()
	addr := freeTCPAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	startServer(t, addr, "azurite-blob", "--blobHost", host, "--blobPort", port,
		"--location", t.TempDir(), "--skipApiVersionCheck", "--loose", "--silent")
	return &azurite{accountURL: "http://" + addr + "/" + azuriteAccount}
}

// startS3rver starts s3rver on 127.0.0.1 with bucket, its data in a test
// directory, and returns its endpoint URL (keys S3RVER/S3RVER); it is
// stopped when the test ends.
func startS3rver(t *testing.T, bucket string) string {
	t.Helper()
	addr := freeTCPAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	startServer(t, addr, "s3rver", "--address", host, "--port", port, "--silent",
		"--directory", t.TempDir(), "--configure-bucket", bucket) // takes the rest as config files
	return "http://" + addr
}

// startServer runs a server (installed by hack/install-test-deps.sh) and
// waits until it accepts connections on addr; it is killed when the test
// ends, its output shown if the test failed.
func startServer(t *testing.T, addr, name string, args ...string) {
	t.Helper()
	testutil.RequireTool(t, name)
	log := &syncBuffer{}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", name, log.Tail(40))
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("%s exited before listening on %s:\n%s", name, addr, log.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s after 30s:\n%s", name, addr, log.String())
		}
	}
}
