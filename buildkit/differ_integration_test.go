//go:build integration

package buildkit

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/mount"
	ctdarchive "github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/containerd/containerd/v2/plugins/diff/walking"
	"github.com/lade-build/lade/exporter/archive/archivetest"
	bkcompression "github.com/moby/buildkit/util/compression"
	bkoverlay "github.com/moby/buildkit/util/overlay"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// overlayLayer makes a lower tree and an overlay layer on top of it, the
// upper changed through the overlay mount by script (run by /bin/sh in the
// merged directory), as a BuildKit RUN step changes a snapshot. It returns
// the lower's and the layer's mounts, as BuildKit's overlayfs snapshotter
// gives them to a differ.
func overlayLayer(t *testing.T, lowerScript, script string) (lower, upper []mount.Mount) {
	t.Helper()
	base := t.TempDir()
	lowerDir, upperDir, work, merged := filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{lowerDir, upperDir, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sh(t, lowerDir, lowerScript)
	lower = []mount.Mount{{Type: "bind", Source: lowerDir, Options: []string{"ro", "rbind"}}}
	upper = []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"index=off", "workdir=" + work, "upperdir=" + upperDir, "lowerdir=" + lowerDir,
	}}}
	if err := mount.All(upper, merged); err != nil {
		t.Fatal(err)
	}
	sh(t, merged, script)
	if err := mount.UnmountAll(merged, 0); err != nil {
		t.Fatal(err)
	}
	return lower, upper
}

func sh(t *testing.T, dir, script string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-ec", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

const (
	differLowerScript = `mkdir -p d/sub keep old gone opq/x
echo a > d/sub/a; echo b > d/b; echo orig > keep/orig; echo past > old/past
echo x > opq/x/y; echo g > gone/g; head -c 200000 /dev/zero > big
touch -d @1500000000 old/past old big`
	differScript = `rm -rf d gone; mkdir -p d/sub; echo new > d/sub/n
rm -rf opq; mkdir opq; echo fresh > opq/f
ln keep/orig keep/link; ln -s orig keep/sym; chmod 600 keep/orig
echo more >> big; mkdir -p new/deep; head -c 70000 /dev/urandom > new/deep/r
touch -d @1800000000 future; mv old moved`
)

// TestDifferMatchesBuildKit: on the same overlay snapshots (whiteouts, an
// opaque directory, hard and symbolic links, copied-up files, a renamed
// directory), lade's Differ writes the tar BuildKit's overlayfs differ
// writes, and, walking the trees, the one containerd's walking differ
// writes; the blob carries its diffID label, and a compressed blob's
// diffID is the tar's sha256.
func TestDifferMatchesBuildKit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("run as root: the differs mount snapshots")
	}
	ctx := context.Background()
	lower, upper := overlayLayer(t, differLowerScript, differScript)
	upperdir, err := bkoverlay.GetUpperdir(lower, upper)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := bkoverlay.WriteUpperdir(ctx, &want, upperdir, lower); err != nil {
		t.Fatal(err)
	}
	var walked bytes.Buffer
	err = mount.WithReadonlyTempMount(ctx, lower, func(l string) error {
		return mount.WithReadonlyTempMount(ctx, upper, func(u string) error {
			return ctdarchive.WriteDiff(ctx, &walked, l, u)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".wh.gone", "opq/.wh.x", ".wh.old", "keep/link"} {
		if !bytes.Contains(want.Bytes(), []byte(p)) {
			t.Fatalf("BuildKit's tar lacks %q: the fixture does not exercise what it should", p)
		}
	}

	cs := archivetest.NewStore(t)
	d := NewDiffer(cs, walking.NewWalkingDiff(cs))
	gz, _ := ladeGzip.Compress(ctx, bkcompression.Config{})
	for _, tc := range []struct {
		name   string
		upper  []mount.Mount
		want   []byte
		opts   []diff.Opt
		packed bool
	}{
		{"overlay uncompressed", upper, want.Bytes(), []diff.Opt{diff.WithMediaType(ocispecs.MediaTypeImageLayer), diff.WithReference("a")}, false},
		{"overlay lade gzip", upper, want.Bytes(), []diff.Opt{diff.WithMediaType(ocispecs.MediaTypeImageLayerGzip), diff.WithCompressor(gz)}, true},
		{"overlay containerd gzip", upper, want.Bytes(), []diff.Opt{diff.WithMediaType(ocispecs.MediaTypeImageLayerGzip)}, true},
		{"walk", bindOfMerged(t, upper), walked.Bytes(), []diff.Opt{diff.WithMediaType(ocispecs.MediaTypeImageLayer)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desc, err := d.Compare(ctx, lower, tc.upper, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			info, err := cs.Info(ctx, desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			wantDiffID := digest.FromBytes(tc.want)
			if got := info.Labels[labels.LabelUncompressed]; got != wantDiffID.String() {
				t.Fatalf("diffID label %q, want %s", got, wantDiffID)
			}
			blob, err := content.ReadBlob(ctx, cs, desc)
			if err != nil {
				t.Fatal(err)
			}
			if tc.packed {
				if bytes.Equal(blob, tc.want) || desc.MediaType != ocispecs.MediaTypeImageLayerGzip {
					t.Fatalf("blob not compressed (%s)", desc.MediaType)
				}
				rc, err := archiveDecompress(blob)
				if err != nil {
					t.Fatal(err)
				}
				blob = rc
			}
			if !bytes.Equal(blob, tc.want) {
				t.Fatalf("lade's tar (%d bytes, %s) is not the reference (%d bytes, %s)",
					len(blob), digest.FromBytes(blob), len(tc.want), wantDiffID)
			}
		})
	}
	if ws, err := cs.ListStatuses(ctx); err != nil || len(ws) != 0 {
		t.Fatalf("ingests left: %v %v", ws, err)
	}
}

// bindOfMerged copies the merged view of an overlay layer into a plain
// directory and returns its bind mount, a snapshot the overlay differ
// cannot take, so the Differ walks both trees.
func bindOfMerged(t *testing.T, upper []mount.Mount) []mount.Mount {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	err := mount.WithReadonlyTempMount(context.Background(), upper, func(root string) error {
		out, err := exec.Command("cp", "-a", root+"/.", dst).CombinedOutput()
		if err != nil {
			return fmt.Errorf("cp: %v: %s", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return []mount.Mount{{Type: "bind", Source: dst, Options: []string{"ro", "rbind"}}}
}

// archiveDecompress gunzips a blob.
func archiveDecompress(b []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// TestDifferFailureLeavesNothing: a diff that fails (an upper that cannot
// be mounted) returns an error naming lade's differ and leaves no ingest or
// blob behind.
func TestDifferFailureLeavesNothing(t *testing.T) {
	ctx := context.Background()
	cs := archivetest.NewStore(t)
	d := NewDiffer(cs, walking.NewWalkingDiff(cs))
	missing := []mount.Mount{{Type: "bind", Source: filepath.Join(t.TempDir(), "missing"), Options: []string{"ro", "rbind"}}}
	_, err := d.Compare(ctx, nil, missing, diff.WithMediaType(ocispecs.MediaTypeImageLayer), diff.WithReference("x"))
	if err == nil || !strings.Contains(err.Error(), "lade differ") {
		t.Fatalf("error %v, want lade differ's", err)
	}
	if ws, _ := cs.ListStatuses(ctx); len(ws) != 0 {
		t.Fatalf("ingests left: %v", ws)
	}
	n := 0
	_ = cs.Walk(ctx, func(content.Info) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d blobs left", n)
	}
}
