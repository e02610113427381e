package buildkit

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sync/semaphore"
)

// Diff admission (issue #17). BuildKit computes every layer of an export
// at once, and each layer the Differ writes holds its pipeline's buffers
// from the first byte to the last: a native gzip input block (1 MiB), the
// read-ahead ring, the tar's and the content writer's buffers, about 2 MB
// in all. On a machine with few cores more layers than cores only share
// the cores, so the Differ writes at most GOMAXPROCS layers at once,
// process-wide (every build and worker of the daemon), and a layer waits
// for a slot before it opens anything. The CPU spent is the same, the
// cores stay busy, and the peak memory of an export with many layers
// falls by what the waiting layers would have held. A waiting layer
// stops waiting when its context ends.

// diffSlots bounds the layers the Differ writes at once; it is sized on
// first use from GOMAXPROCS (at least 1).
var diffSlots = sync.OnceValue(func() *semaphore.Weighted {
	return semaphore.NewWeighted(int64(max(1, runtime.GOMAXPROCS(0))))
})

// admitDiff waits for a slot to write a layer in and returns its release.
func admitDiff(ctx context.Context) (release func(), err error) {
	s := diffSlots()
	if err := s.Acquire(ctx, 1); err != nil {
		return nil, fmt.Errorf("waiting for a free core to diff the layer: %w", context.Cause(ctx))
	}
	return func() { s.Release(1) }, nil
}
