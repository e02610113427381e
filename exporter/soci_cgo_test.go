//go:build cgo

package exporter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	sociconv "github.com/awslabs/soci-snapshotter/soci"
	socistore "github.com/awslabs/soci-snapshotter/soci/store"
	"github.com/awslabs/soci-snapshotter/ztoc"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/lade-build/lade/exporter"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestSociMatchesSociConvert: soci-snapshotter's own `soci convert`
// (IndexBuilder.Convert over a containerd local content store) run on
// lade's plain export gives the same structure as lade's soci=true export
// of the same source (same layer blobs, a SOCI index per platform beside
// the image manifest, the same annotation keys at every level) and zTOCs
// with the same file tables.
func TestSociMatchesSociConvert(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	top := sociRef("conv-top", sociRef("conv-base", nil, 8), 9)
	src := exporter.Source{Platforms: []exporter.PlatformSource{{Platform: "linux/amd64", Ref: top}}}
	plain, err := exporter.NewImageWriter(s).Commit(ctx, src, exporter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ours, err := exporter.NewImageWriter(s).Commit(ctx, src, exporter.Options{Soci: true, SociSpanSize: 1 << 20, SociMinLayerSize: -1})
	if err != nil {
		t.Fatal(err)
	}

	db, err := sociconv.NewDB(filepath.Join(t.TempDir(), "artifacts.db"))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := socistore.NewSociStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	builder, err := sociconv.NewIndexBuilder(s, bs, sociconv.WithArtifactsDb(db), sociconv.WithMinLayerSize(0), sociconv.WithSpanSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	theirRoot, err := builder.Convert(ctx, images.Image{Name: "lade/conv:1", Target: plain.Descriptor})
	if err != nil {
		t.Fatalf("soci convert: %v", err)
	}
	fetch := func(from content.Provider, d ocispec.Descriptor) []byte {
		t.Helper()
		var rc io.ReadCloser
		var err error
		if from == nil {
			rc, err = bs.Fetch(ctx, d)
		} else {
			var b []byte
			b, err = content.ReadBlob(ctx, from, d)
			rc = io.NopCloser(bytes.NewReader(b))
		}
		if err != nil {
			t.Fatalf("fetch %s: %v", d.Digest, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// read returns an image's image manifest, SOCI index entry and SOCI
	// index manifest, from the soci store (from nil) or lade's store.
	read := func(from content.Provider, root ocispec.Descriptor) (ocispec.Manifest, ocispec.Descriptor, ocispec.Manifest) {
		t.Helper()
		var idx ocispec.Index
		must(t, json.Unmarshal(fetch(from, root), &idx))
		if len(idx.Manifests) != 2 {
			t.Fatalf("index of %d manifests, want the image and its SOCI index", len(idx.Manifests))
		}
		var m, sm ocispec.Manifest
		must(t, json.Unmarshal(fetch(from, idx.Manifests[0]), &m))
		must(t, json.Unmarshal(fetch(from, idx.Manifests[1]), &sm))
		return m, idx.Manifests[1], sm
	}
	tm, tEntry, tIdx := read(nil, *theirRoot)
	om, oEntry, oIdx := read(s, ours.Descriptor)

	if !slices.Equal(digests(tm.Layers), digests(om.Layers)) {
		t.Fatalf("layers differ: soci's %v, lade's %v", digests(tm.Layers), digests(om.Layers))
	}
	keys := func(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
	if !slices.Equal(keys(tm.Annotations), keys(om.Annotations)) || !slices.Equal(keys(tEntry.Annotations), keys(oEntry.Annotations)) ||
		tEntry.ArtifactType != oEntry.ArtifactType || tIdx.Config.MediaType != oIdx.Config.MediaType || tIdx.Config.Digest != oIdx.Config.Digest ||
		!slices.Equal(keys(tIdx.Annotations), keys(oIdx.Annotations)) {
		t.Errorf("structure differs:\nsoci's manifest %v, entry %+v, index %+v\nlade's manifest %v, entry %+v, index %+v",
			tm.Annotations, tEntry, tIdx, om.Annotations, oEntry, oIdx)
	}
	if len(tIdx.Layers) != 2 || len(oIdx.Layers) != 2 {
		t.Fatalf("zTOCs: soci's %d, lade's %d; want 2 each", len(tIdx.Layers), len(oIdx.Layers))
	}
	for i := range tIdx.Layers {
		tz, oz := tIdx.Layers[i], oIdx.Layers[i]
		if !slices.Equal(keys(tz.Annotations), keys(oz.Annotations)) || tz.MediaType != oz.MediaType ||
			tz.Annotations[exporter.AnnotationSociLayerDigest] != oz.Annotations[exporter.AnnotationSociLayerDigest] {
			t.Errorf("zTOC %d: soci's %+v, lade's %+v", i, tz, oz)
		}
		theirs, err := ztoc.Unmarshal(bytes.NewReader(fetch(nil, tz)))
		must(t, err)
		mine, err := ztoc.Unmarshal(bytes.NewReader(fetch(s, oz)))
		must(t, err)
		if theirs.UncompressedArchiveSize != mine.UncompressedArchiveSize || len(theirs.FileMetadata) != len(mine.FileMetadata) {
			t.Fatalf("zTOC %d: %d files of %d bytes, soci's %d of %d", i, len(mine.FileMetadata), mine.UncompressedArchiveSize, len(theirs.FileMetadata), theirs.UncompressedArchiveSize)
		}
		for j, f := range mine.FileMetadata {
			g := theirs.FileMetadata[j]
			f.ModTime, g.ModTime = f.ModTime.UTC(), g.ModTime.UTC()
			if !f.Equal(g) {
				t.Errorf("zTOC %d file %d: lade's %+v, soci's %+v", i, j, f, g)
			}
		}
	}
}

func digests(ds []ocispec.Descriptor) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Digest.String())
	}
	return out
}
