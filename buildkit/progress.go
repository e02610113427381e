package buildkit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/progress"
	"github.com/moby/buildkit/client"
	bkidentity "github.com/moby/buildkit/identity"
	bkprogress "github.com/moby/buildkit/util/progress"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// statusInterval is the minimum time between two byte updates of a layer.
const statusInterval = 150 * time.Millisecond

// trackerKey is the context key of the export's tracker.
type trackerKey struct{}

// tracker follows one export: it numbers the layers lade compresses inside
// BuildKit's blob pipeline and remembers the blobs they produced, so the
// export can tell new blobs from reused ones.
type tracker struct {
	n     atomic.Int64
	mu    sync.Mutex
	fresh map[digest.Digest]freshBlob
	// sink, when set, receives every blob sealed during the export, with
	// the size of its uncompressed tar and the CRC-32C of its bytes (see
	// tarStream).
	sink func(desc ocispecs.Descriptor, uncompressed int64, crc uint32)
	// soci is the zTOC span size when the export asked for soci=true
	// (see layerWriter.withSoci), else 0.
	soci int64
}

// sociSpan returns the export's zTOC span size, 0 without soci=true or
// outside an export.
func (t *tracker) sociSpan() int64 {
	if t == nil {
		return 0
	}
	return t.soci
}

// freshBlob is a blob compressed during this export.
type freshBlob struct {
	Uncompressed int64
	Compressed   int64
	Took         time.Duration
}

// globalLayers numbers layers compressed outside of any export (inline
// cache preparation, cache export).
var globalLayers atomic.Int64

// withTracker returns ctx carrying t.
func withTracker(ctx context.Context, t *tracker) context.Context {
	return context.WithValue(ctx, trackerKey{}, t)
}

// trackerFrom returns the tracker of ctx, nil when there is none. BuildKit's
// flightcontrol contexts forward values of the caller's context.
func trackerFrom(ctx context.Context) *tracker {
	t, _ := ctx.Value(trackerKey{}).(*tracker)
	return t
}

// fresh reports whether dgst was compressed during the export.
func (t *tracker) freshBlob(dgst digest.Digest) (freshBlob, bool) {
	if t == nil {
		return freshBlob{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.fresh[dgst]
	return b, ok
}

// setSink makes the tracker hand sealed blobs to sink.
func (t *tracker) setSink(sink func(ocispecs.Descriptor, int64, uint32)) {
	t.mu.Lock()
	t.sink = sink
	t.mu.Unlock()
}

// streaming reports whether sealed blobs have a sink.
func (t *tracker) streaming() bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sink != nil
}

// seal hands a blob committed to the content store to the sink.
func (t *tracker) seal(desc ocispecs.Descriptor, uncompressed int64, crc uint32) {
	t.mu.Lock()
	sink := t.sink
	t.mu.Unlock()
	if sink != nil {
		sink(desc, uncompressed, crc)
	}
}

// start opens the progress status of one layer being compressed.
func (t *tracker) start(ctx context.Context, c blobs.Compression) *layerTask {
	var n int64
	if t != nil {
		n = t.n.Add(1)
	} else {
		n = globalLayers.Add(1)
	}
	pw, _, _ := bkprogress.NewFromContext(ctx)
	now := time.Now()
	lt := &layerTask{
		t: t, pw: pw, started: now,
		id: fmt.Sprintf("compressing layer %d (lade %s)", n, c),
	}
	lt.write(bkprogress.Status{Started: &now})
	return lt
}

// layerTask is the progress of one layer compressed by lade.
type layerTask struct {
	t       *tracker
	pw      bkprogress.Writer
	id      string
	started time.Time
	mu      sync.Mutex
	current int64
	last    time.Time
}

// add counts n uncompressed bytes, sending an update at most every
// statusInterval.
func (l *layerTask) add(n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.current += n
	now := time.Now()
	if now.Sub(l.last) < statusInterval {
		return
	}
	l.last = now
	l.write(bkprogress.Status{Current: int(l.current), Started: &l.started})
}

// done completes the status and records the blob.
func (l *layerTask) done(dgst digest.Digest, compressed int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	st := bkprogress.Status{Current: int(l.current), Started: &l.started, Completed: &now}
	if err != nil {
		st.Action = "error"
	}
	l.write(st)
	_ = l.pw.Close()
	if err != nil || l.t == nil {
		return
	}
	l.t.mu.Lock()
	if l.t.fresh == nil {
		l.t.fresh = map[digest.Digest]freshBlob{}
	}
	l.t.fresh[dgst] = freshBlob{Uncompressed: l.current, Compressed: compressed, Took: now.Sub(l.started)}
	l.t.mu.Unlock()
}

func (l *layerTask) write(st bkprogress.Status) {
	_ = l.pw.Write(l.id, st)
}

// bridge forwards lade progress events into BuildKit's progress stream of
// ctx, one status per vertex, named by the event's name.
type bridge struct {
	pw bkprogress.Writer
}

// newBridge returns a lade progress.Writer writing into ctx's BuildKit
// progress, and a function closing it.
func newBridge(ctx context.Context) (progress.Writer, func()) {
	pw, _, _ := bkprogress.NewFromContext(ctx)
	return bridge{pw: pw}, func() { _ = pw.Close() }
}

// Write implements progress.Writer. lade's per-layer events are left out:
// the adapter reports each layer once itself (see reportLayers).
func (b bridge) Write(e progress.Event) {
	if strings.HasPrefix(e.ID, "layer:") {
		return
	}
	st := bkprogress.Status{Action: e.Status, Current: int(e.Current), Total: int(e.Total)}
	if !e.Started.IsZero() {
		t := e.Started
		st.Started = &t
	}
	if e.Done() {
		t := e.Completed
		st.Completed = &t
	}
	if e.Error != "" {
		st.Action = "error: " + e.Error
	}
	_ = b.pw.Write(e.Name, st)
}

// oneOff reports a step with no bytes, as BuildKit's exporters do.
func oneOff(ctx context.Context, name string) func(error) error {
	return bkprogress.OneOff(ctx, name)
}

// statusLade is the step that says lade exports (the vertex keeps
// BuildKit's name, which clients look for).
const statusLade = "exporting with lade"

// announce shows statusLade, done at once so that it prints one line.
func announce(ctx context.Context) {
	pw, _, _ := bkprogress.NewFromContext(ctx)
	defer pw.Close()
	now := time.Now()
	_ = pw.Write(statusLade, bkprogress.Status{Started: &now, Completed: &now})
}

// warn shows each message as a warning of the export's vertex.
func warn(ctx context.Context, msgs []string) {
	if len(msgs) == 0 {
		return
	}
	pw, _, _ := bkprogress.NewFromContext(ctx)
	defer pw.Close()
	for _, m := range msgs {
		_ = pw.Write(bkidentity.NewID(), client.VertexWarning{Level: 1, Short: []byte(m)})
	}
}

// reportLayers sends one status per layer not compressed in this export
// (the ones compressed have their "compressing layer" status): reused
// blobs with their size, and the empty layers lade dropped.
func reportLayers(ctx context.Context, tr *tracker, res exporter.Result) {
	pw, _, _ := bkprogress.NewFromContext(ctx)
	defer pw.Close()
	now := time.Now()
	seen := map[string]bool{}
	for _, pr := range res.Platforms {
		for _, l := range pr.Layers {
			id := ""
			switch _, fresh := tr.freshBlob(l.Digest); {
			case l.Dropped:
				id = fmt.Sprintf("dropping empty layer %s", short(l.Digest))
			case !fresh:
				id = fmt.Sprintf("reusing layer %s (%s)", short(l.Digest), l.Compression)
			}
			if id == "" || seen[id] {
				continue
			}
			seen[id] = true
			_ = pw.Write(id, bkprogress.Status{Current: int(l.Size), Total: int(l.Size), Started: &now, Completed: &now})
		}
	}
}

// short is a digest cut to 12 hex digits, as BuildKit shows them.
func short(d digest.Digest) string {
	if e := d.Encoded(); len(e) > 12 {
		return d.Algorithm().String() + ":" + e[:12]
	}
	return d.String()
}
