package archive_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/exporter/archive/archivetest"
)

// TestMismatchErrors checks that content not matching its descriptor, read
// whole or streamed, fails with the one digest-mismatch sentinel lade has
// (cache.ErrDigestMismatch, also matched by size mismatches) and its one
// errdefs class, data loss.
func TestMismatchErrors(t *testing.T) {
	ctx := context.Background()
	cs := archivetest.NewStore(t)
	img := archivetest.Build(t, cs, archivetest.Spec{Platforms: []string{"linux/amd64"}})
	cfg := img.Platforms[0].Config
	for _, truncate := range []bool{false, true} {
		p := archivetest.Corrupt(cs, cfg.Digest, truncate)
		_, rerr := archive.ReadVerified(ctx, p, cfg)
		cerr := archive.CopyBlob(ctx, p, cfg, io.Discard, nil)
		for name, err := range map[string]error{"ReadVerified": rerr, "CopyBlob": cerr} {
			if !errors.Is(err, cache.ErrDigestMismatch) || !errdefs.IsDataLoss(err) || errdefs.IsFailedPrecondition(err) {
				t.Errorf("%s (truncate=%v): %v: want cache.ErrDigestMismatch, data loss only", name, truncate, err)
			}
			if errors.Is(err, cache.ErrSizeMismatch) != truncate {
				t.Errorf("%s (truncate=%v): %v: matches cache.ErrSizeMismatch: %v", name, truncate, err, !truncate)
			}
		}
	}
}
