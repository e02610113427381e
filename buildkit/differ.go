package buildkit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/containerd/v2/pkg/epoch"
	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/internal/writeback"
	containerdsnapshot "github.com/moby/buildkit/snapshot/containerd"
	"github.com/moby/buildkit/util/iohelper"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Differ is the diff.Comparer lade-buildkitd gives BuildKit's cache
// manager: it computes a layer blob from two snapshots' mounts with lade's
// change writer, which reads files ahead on parallel readers while the
// tar is written, hashed and compressed in a pipeline. The changes are
// BuildKit's (the overlay upperdir when the snapshots are one overlay
// layer apart, else a walk of both trees) and the tar is containerd's byte
// for byte, xattrs included (only security.capability is written, as
// containerd does: cache.ChangesOptions.OnlyCapabilityXattr), so the blobs
// are the ones BuildKit's differs write, on SELinux-labelled hosts too.
//
// Media types Differ does not know go to the fallback comparer.
type Differ struct {
	cs       content.Store
	fallback diff.Comparer
	// ingester opens the blob writers: the store under cs when cs is
	// BuildKit's namespacing wrapper, whose writers hide containerd's
	// Sync (see writer).
	ingester content.Ingester
	ns       string // the namespace of ingester's writers; "" for cs's own
}

var _ diff.Comparer = (*Differ)(nil)

// NewDiffer returns a Differ writing blobs to cs. fallback computes the
// diffs of media types it does not write itself.
func NewDiffer(cs content.Store, fallback diff.Comparer) *Differ {
	d := &Differ{cs: cs, fallback: fallback, ingester: cs}
	if s, ok := cs.(*containerdsnapshot.Store); ok && s != nil {
		d.ingester, d.ns = s.Store, s.Namespace()
	}
	return d
}

// writer opens the content writer of ref; with writeback.EveryEnv set,
// the blob's write-back is started behind its writes (internal/writeback).
func (d *Differ) writer(ctx context.Context, ref, mediaType string) (content.Writer, error) {
	if d.ns != "" {
		ctx = namespaces.WithNamespace(ctx, d.ns)
	}
	cw, err := content.OpenWriter(ctx, d.ingester, content.WithRef(ref),
		content.WithDescriptor(ocispecs.Descriptor{MediaType: mediaType}))
	if err != nil {
		return nil, err
	}
	return writeback.Wrap(cw, 0), nil
}

// diffRefs numbers the content references of diffs asked without one.
var diffRefs atomic.Uint64

// Compare implements diff.Comparer. The options are containerd's:
// MediaType (default gzip), Reference (the content ingest reference),
// Labels, Compressor (else containerd's compressor for the media type) and
// SourceDateEpoch (file times clamped to it, also read from the context as
// containerd's differ does). The blob is committed with the
// "containerd.io/uncompressed" label naming its diffID. When the overlay
// upperdir cannot be diffed, the layer is diffed again by walking both
// trees, as BuildKit falls back to its walking differ.
func (d *Differ) Compare(ctx context.Context, lower, upper []mount.Mount, opts ...diff.Opt) (ocispecs.Descriptor, error) {
	var cfg diff.Config
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return ocispecs.Descriptor{}, err
		}
	}
	if cfg.MediaType == "" {
		if cfg.Compressor != nil {
			return ocispecs.Descriptor{}, errors.New("lade differ: a compressor needs an explicit media type")
		}
		cfg.MediaType = ocispecs.MediaTypeImageLayerGzip
	}
	if tm := epoch.FromContext(ctx); tm != nil && cfg.SourceDateEpoch == nil {
		cfg.SourceDateEpoch = tm
	}
	kind := compression.Unknown
	if cfg.Compressor == nil {
		var ok bool
		if kind, ok = layerCompression(cfg.MediaType); !ok {
			return d.fallback.Compare(ctx, lower, upper, opts...)
		}
	}
	desc, err := d.write(ctx, cfg, kind, mountedChanges(lower, upper, false))
	if errors.Is(err, errOverlayDiff) && ctx.Err() == nil {
		desc, err = d.write(ctx, cfg, kind, mountedChanges(lower, upper, true))
	}
	if err != nil {
		return ocispecs.Descriptor{}, fmt.Errorf("lade differ: %w", err)
	}
	return desc, nil
}

// layerCompression returns containerd's compression of a layer media type
// it can write without a compressor.
func layerCompression(mediaType string) (compression.Compression, bool) {
	switch mediaType {
	case ocispecs.MediaTypeImageLayer, images.MediaTypeDockerSchema2Layer:
		return compression.Uncompressed, true
	case ocispecs.MediaTypeImageLayerGzip, images.MediaTypeDockerSchema2LayerGzip:
		return compression.Gzip, true
	case ocispecs.MediaTypeImageLayerZstd:
		return compression.Zstd, true
	}
	return compression.Unknown, false
}

// write streams the layer tar of src into the content store under cfg's
// reference, once admitted (admit.go): the tar is produced by lade's
// change writer on its own goroutines, and this goroutine hashes it and
// feeds the compressor. An uncompressed blob is its own diffID (hashed
// once, by the content writer). Nothing is left in the store's ingest on
// failure.
func (d *Differ) write(ctx context.Context, cfg diff.Config, kind compression.Compression, src cache.ChangeSource) (_ ocispecs.Descriptor, err error) {
	release, err := admitDiff(ctx)
	if err != nil {
		return ocispecs.Descriptor{}, err
	}
	defer release()
	ref := cfg.Reference
	if ref == "" {
		ref = "lade-diff-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatUint(diffRefs.Add(1), 10)
	}
	cw, err := d.writer(ctx, ref, cfg.MediaType)
	if err != nil {
		return ocispecs.Descriptor{}, fmt.Errorf("open content writer %s: %w", ref, err)
	}
	defer func() {
		if cw != nil {
			_ = cw.Close()
			_ = d.cs.Abort(context.WithoutCancel(ctx), ref)
		}
	}()
	if err := cw.Truncate(0); err != nil {
		return ocispecs.Descriptor{}, fmt.Errorf("truncate content writer %s: %w", ref, err)
	}
	bw := &contentSink{bw: bufio.NewWriterSize(cw, 128<<10), cw: cw}
	zw, err := compressorFor(cfg, kind, bw)
	if err != nil {
		return ocispecs.Descriptor{}, err
	}
	zwOpen := true
	defer func() {
		if !zwOpen {
			return
		}
		if f, ok := zw.(interface{ fail(error) }); ok {
			f.fail(err) // lade's compressor: the layer's status ends failed
		} else {
			_ = zw.Close()
		}
	}()
	dst := io.Writer(zw)
	var diffID digest.Digester
	if nop, ok := zw.(*iohelper.NopWriteCloser); !ok || nop.Writer != bw {
		diffID = digest.SHA256.Digester()
		dst = io.MultiWriter(zw, diffID.Hash())
	}

	layer, err := cache.NewChangesRef(ref, src, cache.ChangesOptions{OnlyCapabilityXattr: true})
	if err != nil {
		return ocispecs.Descriptor{}, err
	}
	rc, err := layer.Diff(ctx, cache.DiffOptions{Epoch: cfg.SourceDateEpoch})
	if err != nil {
		return ocispecs.Descriptor{}, err
	}
	defer rc.Close()
	if _, err := io.Copy(dst, rc); err != nil {
		return ocispecs.Descriptor{}, fmt.Errorf("write layer: %w", err)
	}
	zwOpen = false
	if err := zw.Close(); err != nil {
		return ocispecs.Descriptor{}, fmt.Errorf("close compressor: %w", err)
	}
	if err := bw.bw.Flush(); err != nil {
		return ocispecs.Descriptor{}, fmt.Errorf("write layer: %w", err)
	}

	dgst := cw.Digest()
	uncompressed := dgst
	if diffID != nil {
		uncompressed = diffID.Digest()
	}
	lbls := maps.Clone(cfg.Labels)
	if lbls == nil {
		lbls = map[string]string{}
	}
	lbls[labels.LabelUncompressed] = uncompressed.String()
	if err := cw.Commit(ctx, 0, dgst, content.WithLabels(lbls)); err != nil && !errdefs.IsAlreadyExists(err) {
		return ocispecs.Descriptor{}, fmt.Errorf("commit layer %s: %w", dgst, err)
	}
	_ = cw.Close()
	cw = nil
	size, err := d.labelDiffID(ctx, dgst, uncompressed)
	if err != nil {
		return ocispecs.Descriptor{}, err
	}
	return ocispecs.Descriptor{MediaType: cfg.MediaType, Digest: dgst, Size: size}, nil
}

// labelDiffID adds the diffID label to a committed blob that existed
// without it, and returns the blob's size.
func (d *Differ) labelDiffID(ctx context.Context, dgst, uncompressed digest.Digest) (int64, error) {
	info, err := d.cs.Info(ctx, dgst)
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", dgst, err)
	}
	if info.Labels[labels.LabelUncompressed] != "" {
		return info.Size, nil
	}
	if info.Labels == nil {
		info.Labels = map[string]string{}
	}
	info.Labels[labels.LabelUncompressed] = uncompressed.String()
	if _, err := d.cs.Update(ctx, info, "labels."+labels.LabelUncompressed); err != nil {
		return 0, fmt.Errorf("label layer %s with its diffID: %w", dgst, err)
	}
	return info.Size, nil
}

// contentSink is the blobSink of a content writer: the blob's digest is
// the one the content writer computes anyway.
type contentSink struct {
	bw *bufio.Writer
	cw content.Writer
	n  int64
}

func (s *contentSink) Write(p []byte) (int, error) {
	n, err := s.bw.Write(p)
	s.n += int64(n)
	return n, err
}

func (s *contentSink) blobDigest() (digest.Digest, error) {
	if err := s.bw.Flush(); err != nil {
		return "", err
	}
	return s.cw.Digest(), nil
}

func (s *contentSink) written() int64 { return s.n }

// compressorFor returns the writer compressing into w: cfg's compressor,
// else containerd's for kind (the identity for an uncompressed layer).
func compressorFor(cfg diff.Config, kind compression.Compression, w io.Writer) (io.WriteCloser, error) {
	if cfg.Compressor != nil {
		zw, err := cfg.Compressor(w, cfg.MediaType)
		if err != nil {
			return nil, fmt.Errorf("open compressor for %s: %w", cfg.MediaType, err)
		}
		return zw, nil
	}
	if kind == compression.Uncompressed {
		return &iohelper.NopWriteCloser{Writer: w}, nil
	}
	zw, err := compression.CompressStream(w, kind)
	if err != nil {
		return nil, fmt.Errorf("open compressor for %s: %w", cfg.MediaType, err)
	}
	return zw, nil
}
