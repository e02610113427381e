//go:build integration

package frontendtest

import (
	"context"
	"testing"
	"time"
)

// TestReproducibleAfterPrune builds one Dockerfile twice through
// lade-buildkitd, with a full prune in between (nothing cached, every
// layer recomputed), with SOURCE_DATE_EPOCH and rewrite-timestamp=true:
// the image digest is the same.
func TestReproducibleAfterPrune(t *testing.T) {
	ld := startDaemon(t, lade, "")
	ctx := contextDir(t, mainDockerfile, nil)
	first := ociBuild(t, ld, ctx, ",rewrite-timestamp=true", epochOpt...)
	first.verify(t)
	pctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := ld.buildctl(pctx, "prune", "--all"); err != nil {
		t.Fatalf("prune: %v\n%s", err, out)
	}
	time.Sleep(1100 * time.Millisecond) // a later wall clock must not matter
	second := ociBuild(t, ld, ctx, ",rewrite-timestamp=true", epochOpt...)
	second.verify(t)
	if first.root.Digest != second.root.Digest {
		t.Fatalf("two builds after a full prune: %s and %s", first.root.Digest, second.root.Digest)
	}
}
