package push

import (
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lade-build/lade/progress"
)

// Done statuses of a blob's progress vertex.
const (
	// StatusPushed: the blob was uploaded.
	StatusPushed = "pushed"
	// StatusExists: the registry (on push) or the store (on pull) already
	// had the blob.
	StatusExists = "exists"
	// StatusMounted: the registry mounted the blob from another
	// repository instead of receiving it.
	StatusMounted = "mounted"
	// StatusPulled: the blob was fetched into the store.
	StatusPulled = "pulled"
)

// kind names a blob's role for messages: index, manifest, config, layer
// or blob.
func kind(mediaType string) string {
	switch {
	case images.IsIndexType(mediaType):
		return "index"
	case images.IsManifestType(mediaType):
		return "manifest"
	case images.IsConfigType(mediaType):
		return "config"
	case images.IsLayerType(mediaType):
		return "layer"
	}
	return "blob"
}

// describe names a blob for errors: its kind and full digest.
func describe(desc ocispec.Descriptor) string {
	return kind(desc.MediaType) + " " + desc.Digest.String()
}

// startTask starts the progress vertex of one blob: ID "<verb> <digest>",
// name like "push layer sha256:0123456789ab", total its size.
func startTask(w progress.Writer, verb string, desc ocispec.Descriptor) *progress.Task {
	short := desc.Digest.String()
	if enc := desc.Digest.Encoded(); len(enc) > 12 {
		short = fmt.Sprintf("%s:%s", desc.Digest.Algorithm(), enc[:12])
	}
	name := fmt.Sprintf("%s %s %s", verb, kind(desc.MediaType), short)
	return progress.Start(w, verb+" "+desc.Digest.String(), name, desc.Size)
}

// meter tracks the byte position of one blob transfer on its Task, moving
// back when a transfer rewinds or restarts. It is used by one goroutine at
// a time.
type meter struct {
	task *progress.Task
	pos  int64
}

// set moves the position to p.
func (m *meter) set(p int64) {
	m.task.Add(p - m.pos)
	m.pos = p
}

// meteredReader is a blob reader that reports bytes read to a meter and
// follows seeks (content.Copy rewinds after a reset).
type meteredReader struct {
	r *io.SectionReader
	m *meter
}

// Read reads from the blob and advances the meter.
func (r *meteredReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.m.set(r.m.pos + int64(n))
	return n, err
}

// Seek seeks the blob and moves the meter to the new offset.
func (r *meteredReader) Seek(offset int64, whence int) (int64, error) {
	n, err := r.r.Seek(offset, whence)
	if err == nil {
		r.m.set(n)
	}
	return n, err
}

// meteredWriter is a content writer that reports bytes written to a meter.
type meteredWriter struct {
	content.Writer
	m *meter
}

// Write writes to the content writer and advances the meter.
func (w *meteredWriter) Write(p []byte) (int, error) {
	n, err := w.Writer.Write(p)
	w.m.set(w.m.pos + int64(n))
	return n, err
}
