package push

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Remote is read access to one image in a registry repository, as a
// content.Provider: nothing is fetched until a reader is read, so a copy
// that finds a blob already at its destination never downloads it. Blobs
// are not verified here: readers of a Remote (CopyBlob, ReadVerified,
// Push) verify digest and size as they read. As a content.InfoProvider it
// reports, for any digest, the distribution-source label of the
// repository, so that Push to another repository of the same registry
// mounts blobs instead of uploading them. Close releases its connections.
type Remote struct {
	s       *session
	fetcher remotes.Fetcher
	name    reference.Named
	root    ocispec.Descriptor
	source  map[string]string
}

// OpenRemote resolves ref (see Pull for its forms) and returns the image
// it names; the registry is asked only for the root descriptor.
func OpenRemote(ctx context.Context, ref string, opts Options) (*Remote, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("open %s: %w", ref, err)
	}
	opts = opts.withDefaults()
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, fmt.Errorf("parse reference %q: %w", ref, err)
	}
	named = reference.TagNameOnly(named)
	s, err := newSession(opts)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", named, err)
	}
	name, root, err := s.resolver.Resolve(ctx, named.String())
	if err != nil {
		err = s.explainAuth(err, reference.Domain(named))
		s.close()
		return nil, s.scrub(fmt.Errorf("resolve %s: %w", named, err))
	}
	fetcher, err := s.resolver.Fetcher(ctx, name)
	if err != nil {
		s.close()
		return nil, s.scrub(fmt.Errorf("open %s: %w", named, err))
	}
	return &Remote{s: s, fetcher: fetcher, name: named, root: root, source: sourceLabel(named)}, nil
}

// Root returns the descriptor the reference resolved to.
func (r *Remote) Root() ocispec.Descriptor { return r.root }

// Name returns the reference, normalized (with ":latest" when it had
// neither tag nor digest).
func (r *Remote) Name() string { return r.name.String() }

// Close releases the Remote's idle connections.
func (r *Remote) Close() error {
	r.s.close()
	return nil
}

// Info reports desc's distribution-source label without asking the
// registry; Size is unknown (0).
func (r *Remote) Info(_ context.Context, dgst digest.Digest) (content.Info, error) {
	return content.Info{Digest: dgst, Labels: r.source}, nil
}

// ReaderAt returns a reader over desc in the repository. It fetches on
// the first read and streams from there; a read at another offset
// re-fetches and skips to it. The bytes are not verified.
func (r *Remote) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	return &remoteReader{ctx: ctx, r: r, desc: desc}, nil
}

// remoteReader streams one blob from a Remote.
type remoteReader struct {
	ctx  context.Context
	r    *Remote
	desc ocispec.Descriptor
	rc   io.ReadCloser
	off  int64
}

// ReadAt reads len(p) bytes at off, fetching (again) when off is not where
// the stream is. A stream that breaks (connection reset, early EOF, 5xx) is
// fetched again from where it stopped, with the Remote's retry policy.
func (rr *remoteReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= rr.desc.Size {
		return 0, io.EOF
	}
	want := p
	if rest := rr.desc.Size - off; int64(len(want)) > rest {
		want = want[:rest]
	}
	done := 0
	opts := rr.r.s.opts
	_, err := retry(rr.ctx, opts.MaxAttempts, opts.RetryDelay, func(context.Context) (struct{}, error) {
		if rr.rc == nil || rr.off != off+int64(done) {
			if err := rr.open(off + int64(done)); err != nil {
				return struct{}{}, err
			}
		}
		n, err := io.ReadFull(rr.rc, want[done:])
		done += n
		rr.off += int64(n)
		if err != nil {
			rr.rc.Close()
			rr.rc = nil
		}
		return struct{}{}, err
	})
	if err != nil {
		return done, rr.r.s.scrub(fmt.Errorf("fetch %s from %s: %w", describe(rr.desc), rr.r.name.Name(), err))
	}
	if done < len(p) {
		return done, io.EOF
	}
	return done, nil
}

// open starts a fetch and skips to off.
func (rr *remoteReader) open(off int64) error {
	if rr.rc != nil {
		rr.rc.Close()
		rr.rc = nil
	}
	rc, err := rr.r.fetcher.Fetch(rr.ctx, rr.desc)
	if err != nil {
		return rr.r.s.explainAuth(err, reference.Domain(rr.r.name))
	}
	if _, err := io.CopyN(io.Discard, rc, off); err != nil {
		rc.Close()
		return fmt.Errorf("skip to byte %d: %w", off, err)
	}
	rr.rc, rr.off = rc, off
	return nil
}

// Size returns the descriptor's size.
func (rr *remoteReader) Size() int64 { return rr.desc.Size }

// Close ends the fetch, if any.
func (rr *remoteReader) Close() error {
	if rr.rc != nil {
		err := rr.rc.Close()
		rr.rc = nil
		return err
	}
	return nil
}
