package archivetest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Tool returns the path of an external test tool, failing the test (never
// skipping it) when the tool is missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed by this test but is not on PATH: run hack/install-test-deps.sh", name)
	}
	return p
}

// Run runs an external tool with a private TMPDIR and returns its standard
// output; a failure or a run over a minute fails the test with stderr.
func Run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := RunErr(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

// RunErr is Run that returns the failure (with stderr) instead of failing.
func RunErr(t testing.TB, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Tool(t, name), args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &toolError{err: err, stderr: stderr.String()}
	}
	return out, nil
}

type toolError struct {
	err    error
	stderr string
}

// Error returns the failure with the tool's stderr.
func (e *toolError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }

// Inspect runs `skopeo inspect` (plus args, e.g. --raw) on a transport
// reference such as oci:DIR:TAG and decodes its JSON output into v.
func Inspect(t testing.TB, v any, args ...string) {
	t.Helper()
	out := Run(t, "skopeo", append([]string{"--insecure-policy", "inspect"}, args...)...)
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("skopeo inspect %v: decode %q: %v", args, out, err)
	}
}

// CheckRootfs fails the test unless every file of p's layers is in rootfs
// with the same content.
func CheckRootfs(t testing.TB, rootfs string, p Platform) {
	t.Helper()
	for _, l := range p.Layers {
		for name, want := range l.Files {
			got, err := os.ReadFile(filepath.Join(rootfs, filepath.FromSlash(name)))
			if err != nil {
				t.Fatalf("unpacked rootfs: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("unpacked %s: content differs from the layer's", name)
			}
		}
	}
}

// Entry is one entry of a hand-made tar.
type Entry struct {
	Name string
	// Type is the tar type flag; 0 means a regular file.
	Type byte
	Link string
	Data []byte
}

// WriteTar writes entries as a tar file at path.
func WriteTar(t testing.TB, path string, entries []Entry) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.Name, Typeflag: typ, Linkname: e.Link, Mode: 0o644, Size: int64(len(e.Data))}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write(e.Data)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Corrupt wraps p so that blob d reads wrong: one byte short when truncate
// is set, otherwise with its last byte flipped.
func Corrupt(p content.Provider, d digest.Digest, truncate bool) content.Provider {
	return corrupt{p: p, d: d, truncate: truncate}
}

type corrupt struct {
	p        content.Provider
	d        digest.Digest
	truncate bool
}

// ReaderAt serves the corrupted blob from memory, the others from p.
func (c corrupt) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if desc.Digest != c.d {
		return c.p.ReaderAt(ctx, desc)
	}
	b, err := content.ReadBlob(ctx, c.p, desc)
	if err != nil {
		return nil, err
	}
	if c.truncate {
		b = b[:len(b)-1]
	} else {
		b[len(b)-1] ^= 0xff
	}
	return bytesReaderAt{bytes.NewReader(b)}, nil
}

type bytesReaderAt struct{ *bytes.Reader }

// Close does nothing.
func (bytesReaderAt) Close() error { return nil }
