package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// skopeoDigest is the digest of the raw root of ref as skopeo reads it.
func skopeoDigest(t *testing.T, ref string, flags ...string) digest.Digest {
	t.Helper()
	return digest.FromString(testutil.Run(t, "skopeo", append(append([]string{"inspect"}, flags...), "--raw", ref)...))
}

// unpackPlatform copies one architecture of ref to a single-image layout
// with skopeo and unpacks it with umoci; it returns the bundle.
func unpackPlatform(t *testing.T, ref, arch string) string {
	t.Helper()
	dir := t.TempDir()
	layout, bundle := filepath.Join(dir, "layout"), filepath.Join(dir, "bundle")
	testutil.Run(t, "skopeo", "copy", "-q", "--override-arch", arch, ref, "oci:"+layout+":tag")
	testutil.Run(t, "umoci", "unpack", "--image", layout+":tag", bundle)
	return bundle
}

// containers numbers the containers run by runBundle.
var containers atomic.Int64

// runBundle runs an umoci bundle with runc (with args, or the image's own
// command when none) without a terminal or network namespace and returns
// its output.
func runBundle(t *testing.T, bundle string, args ...string) string {
	t.Helper()
	path := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(path)
	must(t, err)
	var spec map[string]any
	mustJSON(t, string(b), &spec)
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	if len(args) > 0 {
		proc["args"] = args
	}
	linux := spec["linux"].(map[string]any)
	var nss []any
	for _, ns := range linux["namespaces"].([]any) {
		if ns.(map[string]any)["type"] != "network" {
			nss = append(nss, ns)
		}
	}
	linux["namespaces"] = nss
	b, err = json.Marshal(spec)
	must(t, err)
	must(t, os.WriteFile(path, b, 0o644))
	state := t.TempDir()
	id := fmt.Sprintf("lade-e2e-%d-%d", os.Getpid(), containers.Add(1))
	t.Cleanup(func() { _ = exec.Command("runc", "--root", state, "delete", "--force", id).Run() })
	cmd := exec.Command("runc", "--root", state, "run", "--bundle", bundle, id)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("runc run: %v\nstdout: %s\nstderr: %s", err, stdout, stderr.String())
	}
	return string(stdout)
}

// mustJSON decodes s into v or fails the test.
func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}

// layoutProvider reads the blobs of an OCI layout directory: a
// content.Provider for the output oracle.
type layoutProvider string

// ReaderAt opens the blob of desc; a missing blob is errdefs.ErrNotFound.
func (l layoutProvider) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(string(l), "blobs", desc.Digest.Algorithm().String(), desc.Digest.Encoded()))
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return sizedFile{f, fi.Size()}, nil
}

// sizedFile is an open blob file and its size.
type sizedFile struct {
	*os.File
	size int64
}

// Size returns the blob's size.
func (f sizedFile) Size() int64 { return f.size }
