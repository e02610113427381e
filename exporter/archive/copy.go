package archive

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/progress"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// copyBufSize is the chunk CopyBlob writes: large, since each write to a
// BuildKit session stream is one gRPC message (io.Copy's 32 KiB made a
// 268 MB blob 8,000 messages).
const copyBufSize = 1 << 20

var copyBufs = sync.Pool{New: func() any {
	b := make([]byte, copyBufSize)
	return &b
}}

// CopyBlob streams the blob desc from p into w without buffering it whole,
// verifying its size before the first byte and its digest at the end.
// onBytes, when not nil, is called with each chunk's length. On a mismatch
// the error wraps cache.ErrSizeMismatch or cache.ErrDigestMismatch; w has
// then received (some of) the wrong bytes and must be discarded.
func CopyBlob(ctx context.Context, p content.Provider, desc ocispec.Descriptor, w io.Writer, onBytes func(int64)) error {
	return copyBlob(ctx, p, desc, w, copyOpts{onBytes: onBytes})
}

// verifier checks the bytes written to it against what they should be.
type verifier interface {
	io.Writer
	// Verified reports whether the bytes written are the expected ones.
	Verified() bool
}

// copyOpts are copyBlob's options; the zero value is CopyBlob's.
type copyOpts struct {
	onBytes func(int64)
	// chunk, when > 0, is the largest write to w; reads stay 1 MiB.
	chunk int
	// check verifies the bytes read instead of the descriptor's digest.
	check verifier
}

// copyBlob is CopyBlob with options.
func copyBlob(ctx context.Context, p content.Provider, desc ocispec.Descriptor, w io.Writer, o copyOpts) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("descriptor %q: %w", desc.Digest, err)
	}
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return fmt.Errorf("open blob %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	if ra.Size() != desc.Size {
		return fmt.Errorf("blob %s: found %d bytes, want %d: %w", desc.Digest, ra.Size(), desc.Size, cache.ErrSizeMismatch)
	}
	v := o.check
	if v == nil {
		v = desc.Digest.Verifier()
	}
	if o.chunk > 0 {
		w = chunkWriter{w: w, n: o.chunk}
	}
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	r := &ctxReader{ctx: ctx, r: io.LimitReader(content.NewReader(ra), desc.Size), onBytes: o.onBytes}
	n, err := io.CopyBuffer(io.MultiWriter(w, v), r, *buf)
	if err != nil {
		return fmt.Errorf("copy blob %s: %w", desc.Digest, err)
	}
	if n != desc.Size {
		return fmt.Errorf("blob %s: read %d bytes, want %d: %w", desc.Digest, n, desc.Size, cache.ErrSizeMismatch)
	}
	if !v.Verified() {
		return fmt.Errorf("blob %s (%d bytes): %w", desc.Digest, desc.Size, cache.ErrDigestMismatch)
	}
	return nil
}

// chunkWriter writes to w in writes of at most n bytes.
type chunkWriter struct {
	w io.Writer
	n int
}

func (c chunkWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k, err := c.w.Write(p[:min(len(p), c.n)])
		written += k
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}

// ctxReader stops reading once its context is done and reports progress.
type ctxReader struct {
	ctx     context.Context
	r       io.Reader
	onBytes func(int64)
}

// Read reads from the underlying reader unless the context is done.
func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	if n > 0 && c.onBytes != nil {
		c.onBytes(int64(n))
	}
	return n, err
}

// StartTask starts a progress vertex for one blob. Its ID is idPrefix, a
// space and the digest; its name is verb, the blob's kind and a short digest,
// e.g. "writing layer sha256:0123456789ab".
func StartTask(w progress.Writer, idPrefix, verb string, desc ocispec.Descriptor) *progress.Task {
	short := desc.Digest.String()
	if enc := desc.Digest.Encoded(); len(enc) > 12 {
		short = desc.Digest.Algorithm().String() + ":" + enc[:12]
	}
	name := fmt.Sprintf("%s %s %s", verb, Kind(desc.MediaType), short)
	return progress.Start(w, idPrefix+" "+desc.Digest.String(), name, desc.Size)
}

// Finish completes task with status, or with err when err is not nil, and
// returns err.
func Finish(task *progress.Task, status string, err error) error {
	if err != nil {
		status = ""
	}
	task.Done(status, err)
	return err
}

// ForEachLevel calls fn for every blob, children before parents: blobs of
// one height run concurrently (at most GOMAXPROCS at once) and a height
// starts only once the one below has finished. The first error cancels the
// rest and is returned.
func ForEachLevel(ctx context.Context, blobs []Blob, fn func(context.Context, Blob) error) error {
	byHeight := map[int][]Blob{}
	top := 0
	for _, b := range blobs {
		byHeight[b.Height] = append(byHeight[b.Height], b)
		top = max(top, b.Height)
	}
	for h := 0; h <= top; h++ {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(runtime.GOMAXPROCS(0))
		for _, b := range byHeight[h] {
			g.Go(func() error { return fn(gctx, b) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	return nil
}
