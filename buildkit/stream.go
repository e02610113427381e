package buildkit

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/exporter/oci"
	"github.com/lade-build/lade/progress"
	"github.com/moby/buildkit/client"
	bkexporter "github.com/moby/buildkit/exporter"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/session/filesync"
	"github.com/moby/buildkit/util/grpcerrors"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
)

// StreamChunk is the size of the tar's writes to the client while layers
// are still being compressed: each write is one gRPC message on the
// session, encoded into a pooled buffer of gRPC's next size up (256 B,
// 4, 16 and 32 KiB, then 1 MiB), which gRPC clears before use. Under
// 32 KiB (less the message's few bytes of framing) a message fits a
// 32 KiB buffer; 64 to 256 KiB messages each take and clear a 1 MiB one
// (64 KiB cost the most CPU of 32, 64, 256 KiB and 1 MiB), and 1 MiB
// messages, no cheaper within the noise, kept several 1 MiB buffers live
// beside the compressors. The stream's frames are 16 KiB either way; the
// blob is read 1 MiB at a time.
const StreamChunk = 32<<10 - 64

// emptyTarSize is the size of an empty layer tar (two zero blocks): such a
// layer is dropped from the image, so it is not streamed early.
const emptyTarSize = 1024

// tarStream writes an OCI layout tar to the client while the export runs
// (type=oci, tar=true): each new layer blob goes into the tar as soon as
// lade's compressor has sealed it and BuildKit has committed it, instead
// of after every layer, config and manifest is written. complete then adds
// what is left (reused layers, configs, manifests, indexes) and index.json.
//
// The blob order then depends on which layer finishes first, so the tar's
// bytes vary from one export to the next: it is used only without
// SOURCE_DATE_EPOCH, where the created time makes every tar different
// anyway. With an epoch the tar is written after the export, in the
// deterministic order of oci.WriteTar.
type tarStream struct {
	out     io.WriteCloser
	report  func(error) error
	cs      content.Provider
	tw      *archive.TarWriter
	pw      progress.Writer
	closePW func()

	mu    sync.Mutex
	queue []sealedBlob
	stop  bool
	wake  chan struct{}
	done  chan struct{}

	// completed is set by complete, after which abort does nothing.
	completed bool

	// Owned by the loop until done is closed, then by finish.
	err  error
	sent map[digest.Digest]bool
	dirs map[string]bool
}

// openTarStream opens the client's file at the start of the export and
// starts its OCI tar when the output is an OCI tar without
// SOURCE_DATE_EPOCH, unless the daemon sends stock's tar metadata
// (Defaults.StockTarMetadata); it returns nil otherwise. The file's
// metadata then carries the image name only: the digests are not known
// yet (they are in the build's response as usual).
func (i *instance) openTarStream(ctx context.Context, p *plan, src *bkexporter.Source, sid string) (*tarStream, error) {
	if i.e.typ != client.ExporterOCI || !i.s.out.Tar || p.epoch != nil || i.e.opt.Defaults.StockTarMetadata {
		return nil, nil
	}
	tagged, err := tagNames(i.names(src))
	if err != nil {
		return nil, err
	}
	if err := (oci.Options{Names: tagged, SharedTags: true}).Validate(); err != nil {
		return nil, err
	}
	md := map[string]string{}
	if len(tagged) > 0 {
		md[exptypes.ExporterImageNameKey] = strings.Join(tagged, ",")
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	caller, err := i.e.opt.SessionManager.Get(cctx, sid, false)
	if err != nil {
		return nil, err
	}
	w, err := filesync.CopyFileWriter(ctx, md, i.id, caller)
	if err != nil {
		return nil, err
	}
	report := oneOff(ctx, "sending tarball")
	s, err := newTarStream(ctx, i.e.opt.ContentStore, w, time.Time{})
	if err != nil {
		_ = w.Close()
		return nil, report(err)
	}
	s.out, s.report = w, report
	return s, nil
}

// newTarStream starts the tar on w with the oci-layout file and the blobs
// directories; layer blobs follow as they are added. Entries carry mtime.
func newTarStream(ctx context.Context, cs content.Provider, w io.Writer, mtime time.Time) (*tarStream, error) {
	tw := archive.NewTarWriter(w, mtime)
	tw.SetChunk(StreamChunk)
	s := &tarStream{
		cs: cs, tw: tw,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		sent: map[digest.Digest]bool{}, dirs: map[string]bool{},
	}
	if err := s.tw.File(ocispecs.ImageLayoutFile, archive.LayoutFile()); err != nil {
		return nil, err
	}
	if err := s.tw.Dir(ocispecs.ImageBlobsDir + "/"); err != nil {
		return nil, err
	}
	pw, closePW := newBridge(ctx)
	var once sync.Once
	s.pw, s.closePW = pw, func() { once.Do(closePW) }
	go s.loop(ctx)
	return s, nil
}

// sealedBlob is a layer blob lade's compressor has just written to the
// content store: desc's digest is the SHA-256 the pipeline took of the
// bytes as they were written, crc their CRC-32C taken in the same pass.
type sealedBlob struct {
	desc ocispecs.Descriptor
	crc  uint32
}

// add queues a sealed layer blob of the content store; uncompressed is the
// size of its tar, crc the CRC-32C of its bytes. It never blocks.
//
// The blob is read back from the store and checked against crc, not
// hashed again: the SHA-256 of desc's digest was taken by this process of
// the very bytes the CRC was taken of, as they went into the daemon's own
// content store, moments before. What the check must catch is the file
// not holding those bytes any more (truncated, corrupted, replaced by a
// mix-up): the size is checked before the first byte and CRC-32C detects
// every error burst up to 32 bits and any other change but with
// probability 2^-32, at a tenth of SHA-256's CPU or less. It is not a
// cryptographic check, and need not be: whoever can write the daemon's
// root can change its binary too. Blobs not sealed in this export (reused
// layers, configs, manifests) are hashed in full when read.
func (s *tarStream) add(desc ocispecs.Descriptor, uncompressed int64, crc uint32) {
	if uncompressed <= emptyTarSize {
		return
	}
	s.mu.Lock()
	if !s.stop {
		s.queue = append(s.queue, sealedBlob{desc: desc, crc: crc})
	}
	s.mu.Unlock()
	s.notify()
}

func (s *tarStream) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// loop writes queued blobs until stopped, then drains the queue. After the
// first error it only drains.
func (s *tarStream) loop(ctx context.Context) {
	defer close(s.done)
	for {
		s.mu.Lock()
		q, stop := s.queue, s.stop
		s.queue = nil
		s.mu.Unlock()
		for _, b := range q {
			if s.err == nil {
				s.err = s.blob(ctx, archive.Blob{Desc: b.desc}, &b.crc)
			}
		}
		if len(q) > 0 {
			continue
		}
		if stop {
			return
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			if s.err == nil {
				s.err = ctx.Err()
			}
			return
		}
	}
}

// halt stops the loop once the queued blobs are written and waits for it.
func (s *tarStream) halt() error {
	s.mu.Lock()
	s.stop = true
	s.mu.Unlock()
	s.notify()
	<-s.done
	return s.err
}

// abort stops the stream after the export failed with err and closes the
// client's file; the tar stays incomplete.
func (s *tarStream) abort(err error) {
	if s.completed {
		return // complete closed everything
	}
	_ = s.halt()
	s.closePW()
	_ = s.out.Close()
	_ = s.report(err)
}

// complete writes the rest of the image (root's graph, from p) and
// index.json naming it with names and created, and closes the client's
// file.
func (s *tarStream) complete(ctx context.Context, p content.Provider, root ocispecs.Descriptor, names []string, created time.Time) error {
	s.completed = true
	err := s.finishWith(ctx, p, root, names, created)
	if cerr := s.out.Close(); err == nil {
		err = cerr
	}
	if grpcerrors.Code(err) == codes.AlreadyExists {
		err = nil
	}
	return s.report(err)
}

func (s *tarStream) finishWith(ctx context.Context, p content.Provider, root ocispecs.Descriptor, names []string, created time.Time) error {
	parsed, err := archive.ParseNames(names)
	if err != nil {
		_ = s.halt()
		s.closePW()
		return err
	}
	index, err := archive.EncodeIndex(archive.IndexEntries(root, parsed, &created))
	if err != nil {
		_ = s.halt()
		s.closePW()
		return err
	}
	return s.finish(ctx, p, root, index)
}

// finish writes every blob of root's graph not written yet (from p), then
// index.json (index) and the tar footer. It does not close the writer.
func (s *tarStream) finish(ctx context.Context, p content.Provider, root ocispecs.Descriptor, index []byte) error {
	defer s.closePW()
	if err := s.halt(); err != nil {
		return fmt.Errorf("oci tar: %w", err)
	}
	g, err := archive.Walk(ctx, p, root)
	if err != nil {
		return fmt.Errorf("oci tar: %w", err)
	}
	s.cs = p
	for _, b := range g.Blobs {
		if err := s.blob(ctx, b, nil); err != nil {
			return fmt.Errorf("oci tar: %w", err)
		}
	}
	if err := s.tw.File(ocispecs.ImageIndexFile, index); err != nil {
		return fmt.Errorf("oci tar: %w", err)
	}
	return s.tw.Close()
}

// blob writes b once, under blobs/<algorithm>/<hex>, with a progress
// vertex per blob as oci.WriteTar reports them. A sealed blob (see add)
// has its crc and is checked against it; any other is hashed.
func (s *tarStream) blob(ctx context.Context, b archive.Blob, crc *uint32) error {
	d := b.Desc.Digest
	if s.sent[d] {
		return nil
	}
	if alg := d.Algorithm().String(); !s.dirs[alg] {
		if err := s.tw.Dir(ocispecs.ImageBlobsDir + "/" + alg + "/"); err != nil {
			return err
		}
		s.dirs[alg] = true
	}
	task := archive.StartTask(s.pw, "oci-tar", "writing", b.Desc)
	var err error
	if crc != nil {
		err = s.tw.SealedBlob(ctx, s.cs, b, *crc, task.Add)
	} else {
		err = s.tw.Blob(ctx, s.cs, b, task.Add)
	}
	if err := archive.Finish(task, "written", err); err != nil {
		return err
	}
	s.sent[d] = true
	return nil
}
