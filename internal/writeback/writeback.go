// Package writeback flushes a blob to disk while it is still being
// written.
//
// containerd's content stores make a blob durable when it is committed:
// the local store fsyncs the whole ingest file in Commit. A layer blob of
// hundreds of megabytes then waits, after its last byte, for the disk to
// take every byte at once, and nothing else of the layer is left to
// overlap that wait. Wrap starts a background Sync each time a given
// number of bytes has been written since the last one, so the write-back
// runs alongside the tar and the compression and the final fsync finds
// little left to write. The blob is no more and no less durable than
// before: Commit still syncs everything.
package writeback

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
)

// EveryEnv names the environment variable that turns the background syncs
// on for callers that pass no interval: the MiB written between two syncs
// (e.g. 32). They are off by default. Each background sync is an fsync,
// and on a journaled ext4 an fsync of a file still being written costs a
// journal commit and its own block allocation: in lade-buildkitd's
// uncompressed export (551 MB of blobs) the syncs every 32 MiB added about
// 0.6 CPU-seconds, a third of the export's CPU, for no wall time measured
// (docs/performance.md). On ext4 without a journal they had shortened the
// largest layer's commit from about 105 to 5 ms for little CPU.
const EveryEnv = "LADE_WRITEBACK_MIB"

// defaultEvery returns the interval EveryEnv sets, 0 (off) when unset; a
// value that is not a whole number of MiB is an error naming the variable.
func defaultEvery() (int64, error) {
	v := strings.TrimSpace(os.Getenv(EveryEnv))
	if v == "" || v == "0" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > 1<<20 {
		return 0, fmt.Errorf("%s=%q: want the MiB written between two background syncs of a blob (e.g. 32), or 0 for none", EveryEnv, v)
	}
	return n << 20, nil
}

// envEvery is defaultEvery read once per process.
var envEvery = sync.OnceValue(func() int64 {
	n, _ := defaultEvery() // malformed: off (CheckEnv reports it)
	return n
})

// Writer is a content.Writer that syncs behind its writes. Write, Commit
// and Close must be called from one goroutine, as for any content.Writer;
// the only call made concurrently with them is Sync, on the wrapped
// writer, and Commit, Close and Truncate wait for it first.
type Writer struct {
	content.Writer
	syncer  content.Syncer
	every   int64
	pending int64

	mu      sync.Mutex
	running chan struct{} // closed when the background sync ends; nil when none
	err     error         // the first failed background sync
}

// CheckEnv returns the error of a malformed EveryEnv, for commands to
// refuse it before they start (Wrap alone would only leave the syncs off).
func CheckEnv() error {
	_, err := defaultEvery()
	return err
}

// Wrap returns w syncing behind its writes every `every` bytes (if not
// positive: the interval EveryEnv sets, by default none), or w itself if
// it cannot sync or no interval is set. A malformed EveryEnv leaves the
// syncs off (commands refuse it first: CheckEnv).
//
// The wrapped writer's Sync must be safe while Write runs on another
// goroutine: it is for containerd's local content store (an fsync of the
// ingest file) and for its metadata store over it, whose Sync calls the
// local writer's.
func Wrap(w content.Writer, every int64) content.Writer {
	s, ok := w.(content.Syncer)
	if !ok {
		return w
	}
	if every <= 0 {
		every = envEvery()
	}
	if every <= 0 {
		return w
	}
	return &Writer{Writer: w, syncer: s, every: every}
}

// Write writes p and, once `every` bytes have been written since the last
// sync started, starts another if none is running.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.Writer.Write(p)
	w.pending += int64(n)
	if w.pending >= w.every && w.start() {
		w.pending = 0
	}
	return n, err
}

// start begins a background sync unless one is running; it reports whether
// it did.
func (w *Writer) start() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running != nil {
		select {
		case <-w.running:
		default:
			return false
		}
	}
	done := make(chan struct{})
	w.running = done
	go func() {
		defer close(done)
		if err := w.syncer.Sync(); err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		}
	}()
	return true
}

// wait returns when no background sync runs, with the first one's error.
func (w *Writer) wait() error {
	w.mu.Lock()
	running := w.running
	w.mu.Unlock()
	if running != nil {
		<-running
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Sync waits for the background sync, then syncs what is left.
func (w *Writer) Sync() error {
	if err := w.wait(); err != nil {
		return fmt.Errorf("sync blob: %w", err)
	}
	return w.syncer.Sync()
}

// Commit waits for the background sync and commits. A failed background
// sync fails the commit: the blob would not be durable.
func (w *Writer) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	if err := w.wait(); err != nil {
		return fmt.Errorf("sync blob: %w", err)
	}
	return w.Writer.Commit(ctx, size, expected, opts...)
}

// Close waits for the background sync and closes the writer.
func (w *Writer) Close() error {
	_ = w.wait() // the caller abandons the blob: a failed sync does not matter
	return w.Writer.Close()
}

// Truncate waits for the background sync and truncates.
func (w *Writer) Truncate(size int64) error {
	if err := w.wait(); err != nil {
		return fmt.Errorf("sync blob: %w", err)
	}
	w.pending = 0
	return w.Writer.Truncate(size)
}
