package reliability

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lade-build/lade/internal/testutil"
)

// corruptBlob flips bytes in the middle of the store's blob file for dgst,
// keeping its size and mode.
func corruptBlob(t testing.TB, root, dgst string) {
	t.Helper()
	p := blobFile(root, dgst)
	fi, err := os.Stat(p)
	must(t, err)
	must(t, os.Chmod(p, 0o644))
	b, err := os.ReadFile(p)
	must(t, err)
	for i := len(b) / 2; i < len(b)/2+16 && i < len(b); i++ {
		b[i] ^= 0x5a
	}
	must(t, os.WriteFile(p, b, 0o644))
	must(t, os.Chmod(p, fi.Mode().Perm()))
}

// registryHas reports whether the registry answers 200 to a HEAD of path
// (under http://host/v2/).
func registryHas(t testing.TB, host, path string) bool {
	t.Helper()
	resp, err := http.Head("http://" + host + "/v2/" + path)
	must(t, err)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestCorruptBlob exports a directory into the store, then flips 16 bytes
// of its layer blob (same size). lade check must exit non-zero reporting
// the blob corrupt (and the image referencing it). Every way of sending the
// image out must then fail with a digest error and leave no destination:
// lade save to an OCI tar, an OCI layout (no index.json, no blob named
// after the bad digest), a docker archive; lade export of the same
// directory to an OCI tar (the blob cache reuses the stored blob without
// reading the layer again); lade export --base of the image with
// force-compression (the base layer is re-read); and push to a registry by
// save and by export, after which the registry has neither the manifest nor
// the layer blob, and lade must not have sent the corrupt layer's bytes to
// the end of an upload (stopping only because the registry re-hashed them).
// Then lade rm and lade prune remove the corrupt blob, and the next export
// computes the layer anew (status new), with a clean lade check.
func TestCorruptBlob(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	c := newCLI(t, root)
	in := t.TempDir()
	layer := filepath.Join(in, "layer")
	writeRandom(t, filepath.Join(layer, "data"), 1<<20, 5)
	writeFile(t, filepath.Join(layer, "etc/conf"), "conf\n", 0o644)
	more := filepath.Join(in, "more")
	writeFile(t, filepath.Join(more, "more"), "more\n", 0o644)
	md := filepath.Join(in, "md.json")
	c.ok("export", "--progress", "quiet", "--metadata-file", md, "-o", "type=image,name=corrupt:1", layer)
	res := readMetadata(t, md)
	bad := res[0].Result.Platforms[0].Layers[0].Digest.String()
	corruptBlob(t, root, bad)

	faults := c.checkFaults()
	if n := len(faults["corrupt"]); n != 2 || !strings.Contains(strings.Join(faults["corrupt"], "\n"), bad) {
		t.Errorf("lade check: want the blob %s and the image's reference to it reported corrupt, got %v", bad, faults)
	}
	for kind := range faults {
		if kind != "corrupt" {
			t.Errorf("lade check: unexpected %s faults %v", kind, faults[kind])
		}
	}

	out := t.TempDir()
	digestErr := []string{bad, "digest"}
	c.fail(digestErr, "save", "--progress", "quiet", "corrupt:1", "-o", "type=oci,dest="+filepath.Join(out, "save.tar"))
	c.fail(digestErr, "save", "--progress", "quiet", "corrupt:1", "-o", "type=docker,dest="+filepath.Join(out, "save-docker.tar"))
	c.fail(digestErr, "export", "--progress", "quiet", "-o", "type=oci,dest="+filepath.Join(out, "export.tar"), layer)
	c.fail(digestErr, "export", "--progress", "quiet", "--base", "corrupt:1",
		"-o", "type=oci,dest="+filepath.Join(out, "rebased.tar")+",compression=zstd,force-compression=true", more)
	onlyEntries(t, out)
	layout := filepath.Join(t.TempDir(), "layout")
	c.fail(digestErr, "save", "--progress", "quiet", "corrupt:1", "-o", "type=oci,tar=false,dest="+layout)
	if _, err := os.Stat(filepath.Join(layout, "index.json")); !os.IsNotExist(err) {
		t.Errorf("the layout of a corrupt image has an index.json (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(bad, "sha256:"))); !os.IsNotExist(err) {
		t.Errorf("the layout holds a file named after the corrupt blob (%v)", err)
	}
	layoutBlobsVerify(t, layout)

	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	uploaded := watchUploads(reg)
	c.fail(digestErr, "save", "--progress", "quiet", "corrupt:1",
		"-o", "type=image,name="+reg.Host+"/corrupt:1,push=true,registry.insecure=true")
	c.fail(digestErr, "export", "--progress", "quiet",
		"-o", "type=image,name="+reg.Host+"/corrupt:2,push=true,registry.insecure=true", layer)
	for _, p := range []string{"corrupt/manifests/1", "corrupt/manifests/2", "corrupt/blobs/" + bad} {
		if registryHas(t, reg.Host, p) {
			t.Errorf("the registry has %s after pushes of a corrupt image", p)
		}
	}
	if n := reg.Count(http.MethodPut, testutil.KindManifest); n != 0 {
		t.Errorf("%d manifest PUTs reached the registry", n)
	}
	badSize := res[0].Result.Platforms[0].Layers[0].Size
	for _, n := range uploaded() {
		if n >= badSize {
			t.Errorf("lade sent the registry a whole upload body of %d bytes (the corrupt layer has %d): "+
				"the push streamed the bad content to the end and relied on the registry to reject it", n, badSize)
		}
	}

	// The way out: remove the image, prune the blob; the next export
	// computes the layer again.
	c.ok("rm", "corrupt:1")
	c.ok("prune")
	c.checkClean()
	final := filepath.Join(out, "final.tar")
	c.ok("export", "--progress", "quiet", "--metadata-file", md, "-o", "type=image,name=corrupt:1", "-o", "type=oci,dest="+final, layer)
	if st := readMetadata(t, md)[0].Result.Platforms[0].Layers[0].Status; st != "new" {
		t.Errorf("the layer was %s after its corrupt blob was pruned, want new", st)
	}
	c.checkClean()
	verifyImages(t, root, []string{"corrupt:1"})
}

// watchUploads makes reg count the bytes of every blob upload body (PUT or
// PATCH) that the client delivered to a clean end; the returned function
// lists those counts.
func watchUploads(reg *testutil.Registry) func() []int64 {
	var mu sync.Mutex
	var sizes []int64
	reg.SetFault(func(r *http.Request) (int, bool) {
		if testutil.RequestKind(r) == testutil.KindBlobUpload && r.Body != nil &&
			(r.Method == http.MethodPut || r.Method == http.MethodPatch) {
			r.Body = &eofCounter{ReadCloser: r.Body, done: func(n int64) {
				mu.Lock()
				sizes = append(sizes, n)
				mu.Unlock()
			}}
		}
		return 0, false
	})
	return func() []int64 {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(sizes)
	}
}

// eofCounter counts the bytes read and calls done with the count when the
// body ends cleanly (io.EOF), not when the client aborted it.
type eofCounter struct {
	io.ReadCloser
	n    int64
	done func(int64)
	once sync.Once
}

func (e *eofCounter) Read(p []byte) (int, error) {
	n, err := e.ReadCloser.Read(p)
	e.n += int64(n)
	if err == io.EOF {
		e.once.Do(func() { e.done(e.n) })
	}
	return n, err
}
