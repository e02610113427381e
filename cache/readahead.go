package cache

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/containerd/continuity/fs"
)

// Read-ahead bounds of one layer's diff. The walk of the changes, the
// readers and the tar writer run at once: readers open, stat and read the
// small files (and list every entry's xattrs) ahead of the writer, which
// keeps the walk order. On a tree of small files (a toolchain, a
// node_modules) the per-file system calls, not the bytes, are the work, and
// they spread over the cores instead of holding up one goroutine.
const (
	// readAheadMax is the largest regular file whose content is read ahead;
	// larger files are streamed by the writer (the kernel reads those ahead).
	readAheadMax = 64 << 10
	// readAheadRing bounds the content read ahead: a ring of this many
	// bytes per layer, where each small file takes its size, in walk order.
	// Larger rings (up to 2 MiB) were no faster on the Go toolchain's tree
	// or on 20,000 small files, and cost lade-buildkitd 10 MiB of peak RSS.
	readAheadRing = tarBuf
	// readAheadQueue bounds the entries between the walk and the writer.
	readAheadQueue = 256
)

// ring hands out the read-ahead space of one layer: the walk reserves
// each small file's bytes in walk order and the writer releases them in
// the same order once written, so the space is one circular buffer, taken
// from tarBufs on the first reservation (a layer of large files never
// takes one).
type ring struct {
	buf   []byte        // nil until the first reservation
	freed chan struct{} // signalled on release
	mu    sync.Mutex
	head  int64 // bytes reserved since the start (positions wrap)
	tail  int64 // bytes released since the start
}

func newRing() *ring {
	return &ring{freed: make(chan struct{}, 1)}
}

// close gives the ring's buffer back to tarBufs; nothing may use the
// ring any more.
func (r *ring) close() {
	if r.buf != nil {
		tarBufs.Put(r.buf)
		r.buf = nil
	}
}

// reserve returns n contiguous bytes of the ring and the position the
// writer releases once it wrote them, waiting for space until ctx is done.
func (r *ring) reserve(ctx context.Context, n int64) ([]byte, int64, error) {
	for {
		r.mu.Lock()
		if r.buf == nil {
			r.buf = tarBufs.Get()
		}
		size := int64(len(r.buf))
		start := r.head
		if pad := size - start%size; pad < n {
			start += pad // does not fit before the end: wrap
			if r.tail == r.head {
				// Nothing is reserved: skip the end at once rather than
				// wait for a release that will not come (with pad+n over
				// size, an empty ring would otherwise wait for ever).
				r.tail = start
			}
		}
		if start+n-r.tail <= size {
			r.head = start + n
			r.mu.Unlock()
			at := start % size
			return r.buf[at : at+n : at+n], start + n, nil
		}
		r.mu.Unlock()
		select {
		case <-r.freed:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}

// release frees the ring up to end, a position reserve returned.
func (r *ring) release(end int64) {
	r.mu.Lock()
	r.tail = end
	r.mu.Unlock()
	select {
	case r.freed <- struct{}{}:
	default:
	}
}

// readAheadWorkers is the number of readers of one layer.
func readAheadWorkers() int { return max(2, runtime.GOMAXPROCS(0)) }

// change is one change of the walk on its way to the writer, with what a
// reader prepared for it.
type change struct {
	k fs.ChangeKind
	p string
	f os.FileInfo

	// read is true when a reader prepares the change; otherwise the
	// writer reads everything itself.
	read bool
	// ready (one slot, made once per change and reused with it) receives
	// a value once a reader prepared the change.
	ready chan struct{}
	// prepared holds what the reader found, valid once ready received.
	prepared
	// buf is the ring space data is read into, released up to end once
	// written; nil when the content is not read ahead.
	buf []byte
	end int64
}

// prepared is what a reader reads of an entry ahead of the writer.
type prepared struct {
	err    error
	link   string // symlink target
	xattrs []xattr
	data   []byte // the whole content of a small regular file
}

// writeChangesReadAhead writes the changes walk reports to cw, reading
// entries ahead with readAheadWorkers readers on root. Entries are written
// in walk order; the first error (the walk's, a reader's for an entry the
// writer reaches, or the writer's) stops everything and is returned once
// every goroutine has returned. It does not close cw.
func writeChangesReadAhead(ctx context.Context, cw *changeWriter, root string, walk WalkFunc) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	workers := readAheadWorkers()
	pl := newPipeline(ctx, workers)
	jobs, queue, space := pl.jobs, pl.queue, pl.space

	var wg sync.WaitGroup
	for range workers {
		rfs, err := openTrees(root, cw.root.root.capOnly)
		if err != nil {
			close(jobs)
			wg.Wait()
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer rfs.Close()
			for c := range jobs {
				if err := ctx.Err(); err != nil {
					c.err = err
				} else {
					c.prepared = readEntry(rfs, c)
				}
				c.ready <- struct{}{}
			}
		}()
	}

	var walkErr error
	go func() {
		defer close(queue)
		defer close(jobs)
		walkErr = walk(ctx, pl.send)
	}()

	var writeErr error
	for c := range queue {
		if writeErr != nil {
			continue // drain, so that the walk returns
		}
		if c.read {
			<-c.ready // readers always finish their jobs
		}
		if c.err != nil {
			writeErr = c.err
		} else {
			writeErr = cw.writeChange(ctx, c)
		}
		if c.buf != nil {
			space.release(c.end)
		}
		if writeErr != nil {
			cancel()
			continue
		}
		pl.recycle(c)
	}
	wg.Wait()
	space.close() // every goroutine is done with it
	if writeErr != nil {
		return writeErr
	}
	if walkErr != nil {
		return fmt.Errorf("compute changes: %w", walkErr)
	}
	return nil
}

// pipeline is the channels and the ring between the walk, the readers and
// the writer of one diff.
type pipeline struct {
	ctx   context.Context
	jobs  chan *change // to the readers
	queue chan *change // to the writer, in walk order
	// free holds changes the writer is done with, for the walk to reuse:
	// no allocation per entry once the pipeline is full.
	free  chan *change
	space *ring
}

func newPipeline(ctx context.Context, workers int) *pipeline {
	return &pipeline{
		ctx:   ctx,
		jobs:  make(chan *change, readAheadQueue),
		queue: make(chan *change, readAheadQueue),
		free:  make(chan *change, 2*readAheadQueue+workers+1),
		space: newRing(),
	}
}

// send is the walk's cfs.ChangeFunc: it queues the change for the writer
// and, when a reader prepares it, for the readers, reserving ring space
// for a small file's content.
func (pl *pipeline) send(k fs.ChangeKind, p string, f os.FileInfo, err error) error {
	if err != nil {
		return err
	}
	ctx := pl.ctx
	if err := ctx.Err(); err != nil {
		return err
	}
	var c *change
	select {
	case c = <-pl.free:
		*c = change{ready: c.ready}
	default:
		c = &change{ready: make(chan struct{}, 1)}
	}
	c.k, c.p, c.f = k, p, f
	if needsReader(k, f) {
		c.read = true
		if wantsContent(f) {
			var err error
			if c.buf, c.end, err = pl.space.reserve(ctx, f.Size()); err != nil {
				return err
			}
		}
		select {
		case pl.jobs <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case pl.queue <- c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// recycle hands a change the writer wrote (and no reader still holds)
// back to the walk.
func (pl *pipeline) recycle(c *change) {
	select {
	case pl.free <- c:
	default:
	}
}

// needsReader reports whether a reader prepares the change: every entry
// the writer writes but whiteouts, sockets, entries seen unmodified
// (which only matter as names of hard links) and the large files the
// writer opens itself (see writerOpens).
func needsReader(k fs.ChangeKind, f os.FileInfo) bool {
	return k != fs.ChangeKindDelete && k != fs.ChangeKindUnmodified && f != nil && f.Mode()&os.ModeSocket == 0 && !writerOpens(f)
}

// writerOpens reports whether the writer opens f itself, once, for its
// xattrs and its content: a regular file with one link too large to be
// read ahead (the kernel reads those ahead).
func writerOpens(f os.FileInfo) bool {
	if !f.Mode().IsRegular() || f.Size() <= readAheadMax {
		return false
	}
	_, isHardlink := fs.GetLinkInfo(f)
	return !isHardlink
}

// wantsContent reports whether a reader reads the content of f ahead: a
// small, non-empty regular file with one link (a hard-linked file may be
// written as a link to another name, its content never read).
func wantsContent(f os.FileInfo) bool {
	if !f.Mode().IsRegular() || f.Size() == 0 || f.Size() > readAheadMax {
		return false
	}
	_, isHardlink := fs.GetLinkInfo(f)
	return !isHardlink
}

// readEntry reads what the writer needs of c's entry from rfs: its
// symlink target, its xattrs and, into c.buf, the content of a small
// file.
func readEntry(rfs *trees, c *change) prepared {
	name := strings.TrimPrefix(c.p, "/")
	if c.buf == nil {
		return rfs.readMeta(name, c.f)
	}
	xattrs, err := rfs.ReadSmall(name, c.f, c.buf)
	if err != nil {
		return prepared{err: err}
	}
	return prepared{xattrs: xattrs, data: c.buf}
}

// errShrank is the error of a file that held fewer bytes than its size.
func errShrank(name string, size, n int64) error {
	return fmt.Errorf("copy %s: file shrank from %d to %d bytes while the diff was written", name, size, n)
}
