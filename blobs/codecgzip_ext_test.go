package blobs_test

import (
	"context"
	"math/rand"
	"strings"
	"testing"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/exporter/exportertest"
)

// TestNativeDiffPairs: through the whole pipeline, native and pure-Go gzip
// give the same diffID (the tar's sha256, which the native blob hashes to
// once decompressed) and different blobs, and a blob cache filled by one
// never answers for the other.
func TestNativeDiffPairs(t *testing.T) {
	if !blobs.NativeCodecs() {
		return
	}
	rng := rand.New(rand.NewSource(11))
	random := make([]byte, 1<<20+17)
	rng.Read(random)
	ref := &exportertest.MemRef{RefID: "mixed", Files: map[string]string{
		"text":   strings.Repeat("lade native gzip\n", 200000),
		"random": string(random),
		"small":  "x",
	}}
	ctx := context.Background()
	for _, level := range []int{2, 6} {
		bc := &blobs.MemoryCache{}
		s := store(t)
		var diffIDs, digests []string
		for i, codecs := range []string{"go", "native", "native"} {
			t.Setenv(blobs.CodecsEnv, codecs)
			pairs, err := blobs.GetDiffPairs(ctx, s, ref, blobs.Options{Cache: bc, Compression: blobs.Compression{Type: blobs.Gzip, Level: &level}})
			if err != nil {
				t.Fatal(err)
			}
			p := pairs[0]
			if want := []blobs.Status{blobs.StatusNew, blobs.StatusNew, blobs.StatusReused}[i]; p.Status != want {
				t.Errorf("level %d, %s, pass %d: status %s, want %s", level, codecs, i, p.Status, want)
			}
			rc, err := exportertest.Open(ctx, s, p.Blob)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := exportertest.Decompress(p.Blob.MediaType, rc)
			if dg := digestOf(t, r); dg != p.DiffID.String() {
				t.Errorf("level %d, %s: diffID %s, blob decompresses to %s", level, codecs, p.DiffID, dg)
			}
			rc.Close()
			diffIDs, digests = append(diffIDs, p.DiffID.String()), append(digests, p.Blob.Digest.String())
		}
		if diffIDs[0] != diffIDs[1] || digests[0] == digests[1] {
			t.Errorf("level %d: diffIDs %v, blobs %v: want one diffID, two blobs", level, diffIDs[:2], digests[:2])
		}
	}
}
