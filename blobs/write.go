package blobs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/internal/writeback"
	"github.com/lade-build/lade/progress"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// copyBufSize is the read size of the layer pipeline.
const copyBufSize = 1 << 20

// write reads the layer once: tar -> sha256 (diffID) -> compressor -> content
// writer (which hashes the blob), then commits the blob under its digest.
// Nothing is visible under a digest unless the whole layer was written; on
// any error the ingest is aborted.
func (c *Computer) write(ctx context.Context, ref cache.Ref, comp Compression, opts Options) (p DiffPair, err error) {
	mediaType, _ := comp.MediaType(false)
	task := progress.Start(opts.Progress, "layer:"+ref.ID(), layerName(ref), ref.Layer().Size())
	defer func() {
		if err != nil {
			task.Done("", err)
		}
	}()
	rc, err := ref.Layer().Diff(ctx, cache.DiffOptions{Epoch: layerEpoch(ref, opts)})
	if err != nil {
		return DiffPair{}, fmt.Errorf("read diff: %w", err)
	}
	defer rc.Close()

	ingest := ingestRef(ref.ID())
	w, err := content.OpenWriter(ctx, c.store, content.WithRef(ingest))
	if err != nil {
		return DiffPair{}, fmt.Errorf("open content writer: %w", err)
	}
	w = writeback.Wrap(w, 0)
	committed := false
	defer func() {
		if !committed {
			w.Close()
			_ = c.store.Abort(context.WithoutCancel(ctx), ingest)
		}
	}()

	counter := &countWriter{w: w}
	zw, err := comp.NewWriter(counter, runtime.GOMAXPROCS(0))
	if err != nil {
		return DiffPair{}, err
	}
	diffID, empty, tarSize, err := pump(ctx, rc, zw, task)
	if cerr := zw.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("finish compression: %w", cerr)
	}
	if err != nil {
		return DiffPair{}, err
	}
	if err := rc.Close(); err != nil {
		return DiffPair{}, fmt.Errorf("read diff: %w", err)
	}
	dgst := w.Digest()
	annotations := map[string]string{LabelUncompressed: diffID.String()}
	maps.Copy(annotations, compressorAnnotations(zw))
	err = w.Commit(ctx, counter.n, dgst, content.WithLabels(maps.Clone(annotations)))
	committed = err == nil
	if errdefs.IsAlreadyExists(err) {
		committed, err = true, nil
		w.Close()
	}
	if err != nil {
		return DiffPair{}, fmt.Errorf("commit blob %s: %w", dgst, err)
	}
	p = DiffPair{
		DiffID: diffID,
		Blob: ocispec.Descriptor{
			MediaType:   mediaType,
			Digest:      dgst,
			Size:        counter.n,
			Annotations: annotations,
		},
		Compression: comp.Type,
		Empty:       empty,
		Status:      StatusNew,
		RefID:       ref.ID(),
	}
	status := string(StatusNew)
	if empty {
		status = "empty"
	}
	task.SetTotal(tarSize)
	task.Done(status, nil)
	return p, nil
}

// Annotator is implemented by compressors whose blobs carry layer
// annotations known only once the stream is closed (zstd:chunked's TOC
// position and checksum, for instance). After Close, write puts them on the
// layer descriptor and, as labels, on the committed blob; blob caches
// persist the descriptor, so a cache hit returns them too.
type Annotator interface {
	Annotations() map[string]string
}

// compressorAnnotations returns the annotations of zw, looking through the
// in-flight tracking wrapper of NewWriter; nil when zw has none.
func compressorAnnotations(zw io.Writer) map[string]string {
	if t, ok := zw.(*tracked); ok {
		return compressorAnnotations(t.WriteCloser)
	}
	if a, ok := zw.(Annotator); ok {
		return a.Annotations()
	}
	return nil
}

// pump copies the tar from r into zw, hashing it, and reports whether the
// tar has no entries (its first block is the zero end-of-archive block).
func pump(ctx context.Context, r io.Reader, zw io.Writer, task *progress.Task) (digest.Digest, bool, int64, error) {
	h := sha256.New()
	buf := make([]byte, copyBufSize)
	var first [512]byte
	firstN := 0
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return "", false, 0, err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			if firstN < len(first) {
				firstN += copy(first[firstN:], buf[:n])
			}
			h.Write(buf[:n])
			if _, err := zw.Write(buf[:n]); err != nil {
				return "", false, 0, fmt.Errorf("compress: %w", err)
			}
			task.Add(int64(n))
			total += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", false, 0, fmt.Errorf("read diff: %w", rerr)
		}
	}
	if firstN < len(first) {
		return "", false, 0, fmt.Errorf("read diff: tar stream of %d bytes is truncated", firstN)
	}
	empty := first == [512]byte{}
	return digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)), empty, total, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ingestRef names an ingest uniquely: two writers (goroutines or processes)
// never share one, so a crash leaves a whole ingest to clean, never a mixed one.
func ingestRef(refID string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	sum := sha256.Sum256([]byte(refID))
	return "lade-layer-" + hex.EncodeToString(sum[:8]) + "-" + hex.EncodeToString(b[:])
}

// TypeOfMediaType returns the compression of a layer media type.
func TypeOfMediaType(mt string) (Type, error) {
	switch mt {
	case ocispec.MediaTypeImageLayer, MediaTypeDockerLayer,
		"application/vnd.docker.image.rootfs.foreign.diff.tar",
		ocispec.MediaTypeImageLayerNonDistributable: //nolint:staticcheck // still met in the wild
		return Uncompressed, nil
	case ocispec.MediaTypeImageLayerGzip, MediaTypeDockerLayerGzip,
		ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
		return Gzip, nil
	case ocispec.MediaTypeImageLayerZstd, MediaTypeDockerLayerZstd,
		ocispec.MediaTypeImageLayerNonDistributableZstd: //nolint:staticcheck
		return Zstd, nil
	}
	return "", errors.New("unknown layer media type " + mt)
}

// sameFamily reports whether blobs of type a satisfy a request for b: the
// two gzip flavours share a media type, and a zstd:chunked blob is a zstd
// stream (a plain zstd blob is no zstd:chunked one: it has no TOC).
func sameFamily(a, b Type) bool {
	gz := func(t Type) bool { return t == Gzip || t == GzipCompat }
	return a == b || (gz(a) && gz(b)) || (a == ZstdChunked && b == Zstd)
}
