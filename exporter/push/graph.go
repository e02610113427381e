package push

import (
	"context"
	"errors"
	"sync"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// graph walks a content DAG (index -> manifests -> config and layers)
// children first: a node is visited only after every one of its children
// was visited successfully, siblings run concurrently, and a digest reached
// by several paths (a layer shared by two platforms) is handled once.
// Bounding the work is up to children and visit: the walk itself only
// waits, so it never holds a slot while waiting for a child.
type graph struct {
	// children lists desc's children; it runs before any child is walked.
	children func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error)
	// visit handles desc once all its children are done.
	visit func(ctx context.Context, desc ocispec.Descriptor) error

	mu    sync.Mutex
	nodes map[digest.Digest]*node
}

// node is the shared outcome of one digest's walk.
type node struct {
	done chan struct{}
	err  error
}

// walk handles desc and everything below it, children before desc. The
// first error cancels the rest of the walk below the failing node's
// parent and is returned.
func (g *graph) walk(ctx context.Context, desc ocispec.Descriptor) error {
	g.mu.Lock()
	if g.nodes == nil {
		g.nodes = map[digest.Digest]*node{}
	}
	n, seen := g.nodes[desc.Digest]
	if !seen {
		n = &node{done: make(chan struct{})}
		g.nodes[desc.Digest] = n
	}
	g.mu.Unlock()
	if seen {
		select {
		case <-n.done:
			return n.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n.err = g.run(ctx, desc)
	close(n.done)
	return n.err
}

// run walks desc's children concurrently, then visits desc. When children
// fail, it returns the cause rather than a cancellation the failure set
// off: a child shared with another parent is canceled when a sibling of
// that parent fails, and the other parent, waiting on it, could otherwise
// report "context canceled" ahead of the sibling's error (an anonymous
// push got that instead of the registry's 401).
func (g *graph) run(ctx context.Context, desc ocispec.Descriptor) error {
	kids, err := g.children(ctx, desc)
	if err != nil {
		return err
	}
	eg, ectx := errgroup.WithContext(ctx)
	var (
		mu    sync.Mutex
		cause error
	)
	for _, kid := range kids {
		eg.Go(func() error {
			err := g.walk(ectx, kid)
			if err != nil {
				mu.Lock()
				if cause == nil || (isCancellation(cause) && !isCancellation(err)) {
					cause = err
				}
				mu.Unlock()
			}
			return err
		})
	}
	if eg.Wait() != nil {
		return cause
	}
	return g.visit(ctx, desc)
}

// isCancellation reports whether err is a context's end.
func isCancellation(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
