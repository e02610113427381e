package exportertest

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"sort"
	"sync/atomic"
	"time"

	"github.com/lade-build/lade/cache"
)

// MemRef is an in-memory cache.Ref whose layer is a tar of Files (path ->
// content; a path ending in "/" is a directory). An empty Files gives an
// empty layer. It counts Diff calls so tests can tell reuse from work.
type MemRef struct {
	RefID   string
	Up      cache.Ref
	Desc    string
	Created time.Time
	Files   map[string]string
	// Blob, when set, makes the layer a stored one.
	Blob  *cache.Blob
	Diffs atomic.Int32
}

// ID implements cache.Ref.
func (r *MemRef) ID() string { return r.RefID }

// Parent implements cache.Ref.
func (r *MemRef) Parent() cache.Ref {
	if r.Up == nil {
		return nil
	}
	return r.Up
}

// Description implements cache.Ref.
func (r *MemRef) Description() string { return r.Desc }

// CreatedAt implements cache.Ref.
func (r *MemRef) CreatedAt() time.Time { return r.Created }

// Layer implements cache.Ref.
func (r *MemRef) Layer() cache.Layer { return r }

// Stored implements cache.Layer.
func (r *MemRef) Stored() (cache.Blob, bool) {
	if r.Blob == nil {
		return cache.Blob{}, false
	}
	return *r.Blob, true
}

// Size implements cache.Layer.
func (r *MemRef) Size() int64 {
	var n int64
	for _, c := range r.Files {
		n += int64(len(c))
	}
	return n
}

// Diff implements cache.Layer: a deterministic tar of Files with mtimes at
// 2024-01-01 clamped to the epoch.
func (r *MemRef) Diff(ctx context.Context, opts cache.DiffOptions) (io.ReadCloser, error) {
	r.Diffs.Add(1)
	return io.NopCloser(bytes.NewReader(r.Tar(opts.Epoch))), nil
}

// Tar renders the layer's tar.
func (r *MemRef) Tar(epoch *time.Time) []byte {
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if epoch != nil && mtime.After(*epoch) {
		mtime = *epoch
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(r.Files))
	for n := range r.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		h := &tar.Header{Name: n, Mode: 0o644, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(r.Files[n])), Format: tar.FormatPAX}
		if n[len(n)-1] == '/' {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		_ = tw.WriteHeader(h)
		_, _ = tw.Write([]byte(r.Files[n]))
	}
	_ = tw.Close()
	return buf.Bytes()
}
