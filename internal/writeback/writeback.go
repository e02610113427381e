// Package writeback hands a blob's pages to the disk while the blob is
// still being written, when asked to (EveryEnv).
//
// containerd's content stores make a blob durable when it is committed:
// the local store fsyncs the whole ingest file in Commit. A layer blob of
// hundreds of megabytes then waits, after its last byte, for the disk to
// take every byte at once, and nothing else of the layer is left to
// overlap that wait.
//
// Wrap starts the write-back of what was written since the last time,
// each time a given number of bytes has been written, with
// sync_file_range(SYNC_FILE_RANGE_WRITE) on the ingest file: it queues the
// dirty pages for the disk and returns, without a journal commit and
// without waiting for them. The blob is no more and no less durable than
// before: Commit still syncs it.
//
// It is off by default. A lone blob's commit waits less with it
// (BenchmarkWriteCommit), but in lade-buildkitd's uncompressed export on
// a journaled ext4 the export was slower and spent more CPU: with
// data=ordered, blocks allocated early join the running transaction, so
// every fsync of the metadata databases between the layers then waits for
// the blob data already sent (docs/performance.md). Syncing behind the
// writes with fsync, tried before, cost more still.
package writeback

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// EveryEnv names the environment variable that sets, for callers that pass
// no interval, the MiB written between two write-back starts (e.g. 8);
// unset or 0, there are none.
const EveryEnv = "LADE_WRITEBACK_MIB"

// exampleMiB is the interval the error of a malformed EveryEnv suggests:
// a blob's write-back in a few dozen calls, each interval's pages on
// their way long before the blob ends.
const exampleMiB = 8

// defaultEvery returns the interval EveryEnv sets, 0 (off) when unset; a
// value that is not a whole number of MiB is an error naming the
// variable.
func defaultEvery() (int64, error) {
	v := strings.TrimSpace(os.Getenv(EveryEnv))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > 1<<20 {
		return 0, fmt.Errorf("%s=%q: want the MiB written between two write-back starts of a blob (e.g. %d), or 0 for none", EveryEnv, v, exampleMiB)
	}
	return n << 20, nil
}

// envEvery is defaultEvery read once per process.
var envEvery = sync.OnceValue(func() int64 {
	n, _ := defaultEvery() // malformed: off (CheckEnv reports it)
	return n
})

// CheckEnv returns the error of a malformed EveryEnv, for commands to
// refuse it before they start (Wrap alone would only leave the write-back
// off).
func CheckEnv() error {
	_, err := defaultEvery()
	return err
}

// Writer is a content.Writer that starts the write-back of its ingest file
// behind its writes. Write, Commit, Close and Truncate must be called from
// one goroutine, as for any content.Writer; the write-back runs on another
// one at a time, and Commit, Close and Truncate wait for it first.
type Writer struct {
	content.Writer
	every   int64
	written int64 // bytes written through this Writer
	started int64 // bytes whose write-back has been started

	// file is the ingest file, opened again read-only at the first start
	// (looked set); nil when the writer's store keeps none in this process.
	file   *os.File
	looked bool

	mu      sync.Mutex
	running chan struct{} // closed when the running write-back call ends
}

// startRange starts the write-back of n bytes at off of f. Tests replace it.
var startRange = func(f *os.File, off, n int64) {
	// A failure only leaves the pages to Commit's fsync, which reports it.
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// Wrap returns w starting the write-back of its ingest file every `every`
// bytes (if not positive: the interval EveryEnv sets, by default none),
// or w itself when there is no interval. The ingest file is
// found among the process's open files at the first interval (see
// ingestFile): containerd's local content store and its metadata store
// over it have one; other stores write through unchanged.
func Wrap(w content.Writer, every int64) content.Writer {
	if every <= 0 {
		every = envEvery()
	}
	if every <= 0 {
		return w
	}
	return &Writer{Writer: w, every: every}
}

// Write writes p and, once `every` bytes have been written since the last
// write-back started, starts another if none is running.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.Writer.Write(p)
	w.written += int64(n)
	if w.written-w.started >= w.every {
		w.start()
	}
	return n, err
}

// start begins the write-back of what was written since the last one,
// unless one is running.
func (w *Writer) start() {
	if !w.looked {
		w.looked = true
		if st, err := w.Writer.Status(); err == nil && st.Ref != "" && st.Offset == w.written {
			w.file = ingestFile(st.Ref)
		}
	}
	if w.file == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running != nil {
		select {
		case <-w.running:
		default:
			return
		}
	}
	off, n := w.started, w.written-w.started
	w.started = w.written
	done := make(chan struct{})
	w.running = done
	go func() {
		defer close(done)
		startRange(w.file, off, n)
	}()
}

// Started returns how many of the bytes written have had their write-back
// started: 0 until the first interval, and for good when the writer's
// store keeps no ingest file in this process.
func (w *Writer) Started() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.started
}

// wait returns when no write-back call runs.
func (w *Writer) wait() {
	w.mu.Lock()
	running := w.running
	w.mu.Unlock()
	if running != nil {
		<-running
	}
}

// release waits for the write-back and closes the ingest file.
func (w *Writer) release() {
	w.wait()
	if w.file != nil {
		w.file.Close()
		w.file = nil
	}
}

// Commit waits for the write-back call and commits (which syncs the blob).
func (w *Writer) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	w.release()
	return w.Writer.Commit(ctx, size, expected, opts...)
}

// Close waits for the write-back call and closes the writer.
func (w *Writer) Close() error {
	w.release()
	return w.Writer.Close()
}

// Truncate waits for the write-back call and truncates; the write-back
// starts again from the new end.
func (w *Writer) Truncate(size int64) error {
	w.wait()
	w.mu.Lock()
	w.written, w.started = size, size
	w.mu.Unlock()
	return w.Writer.Truncate(size)
}

// ingestFile finds, among this process's open files, the data file of the
// local content store's ingest whose ref is ref, and opens it again
// read-only (sync_file_range acts on the file, whatever descriptor names
// it). The local store keeps an ingest's ref in the "ref" file beside its
// data; containerd's metadata store names its ingests
// "namespace/sequence/ref" there. It returns nil when there is none: the
// store is another kind, or in another process (containerd's daemon).
func ingestFile(ref string) *os.File {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || filepath.Base(target) != "data" || filepath.Base(filepath.Dir(filepath.Dir(target))) != "ingest" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(target), "ref"))
		if err != nil {
			continue
		}
		if r := string(b); r != ref && !strings.HasSuffix(r, "/"+ref) {
			continue
		}
		f, err := os.Open(target)
		if err != nil {
			return nil
		}
		return f
	}
	return nil
}
