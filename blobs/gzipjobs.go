package blobs

import (
	"runtime"
	"sync"

	"github.com/lade-build/lade/blobs/internal/offheap"
)

// gzipOutCap is the output capacity of a native gzip block: the larger of
// the native encoders' bounds for a full block (ISA-L's, isal.Bound;
// libdeflate's gzip bound is about 1 KiB over the input).
const gzipOutCap = gzipBlock + gzipBlock>>4 + 1024

// gzipJob is one native gzip block in flight. Its input and output
// buffers are mapped outside the Go heap (offheap): a layer keeps one to
// three blocks of about 2 MiB in flight, which on the heap would also
// raise the garbage collector's heap goal by as much while layers
// compress.
type gzipJob struct {
	in, dict, out []byte
	outBuf        []byte // the block's own output buffer; out may be longer
	final         bool
	err           error
	done          chan struct{}
	cleanup       runtime.Cleanup // unmaps the buffers of a job dropped without release
}

// gzipJobs keeps the jobs of finished blocks for the next ones while
// layers are being compressed: at most maxIdleGzipJobs of them, and none
// once no layer is (trimIdleGzipJobs), so the daemon does not keep their
// memory between exports.
var gzipJobs struct {
	mu   sync.Mutex
	idle []*gzipJob
}

// maxIdleGzipJobs bounds the idle jobs: enough for every core's block
// and the blocks waiting to be written.
func maxIdleGzipJobs() int { return 2*runtime.GOMAXPROCS(0) + 2 }

// newGzipJob returns an empty job, reused or newly mapped.
func newGzipJob() *gzipJob {
	gzipJobs.mu.Lock()
	if n := len(gzipJobs.idle); n > 0 {
		j := gzipJobs.idle[n-1]
		gzipJobs.idle = gzipJobs.idle[:n-1]
		gzipJobs.mu.Unlock()
		return j
	}
	gzipJobs.mu.Unlock()
	in, out := offheap.Alloc(gzipBlock), offheap.Alloc(gzipOutCap)
	j := &gzipJob{in: in[:0], out: out[:0], outBuf: out[:0], done: make(chan struct{}, 1)}
	// A writer dropped without Close leaves its jobs to the collector:
	// their maps go with them.
	j.cleanup = runtime.AddCleanup(j, freeJobBuffers, [2][]byte{in, out})
	return j
}

// releaseGzipJob keeps j for another block, or unmaps it when enough are
// idle. Nothing may use j afterwards.
func releaseGzipJob(j *gzipJob) {
	j.in, j.dict, j.out, j.final, j.err = j.in[:0], j.dict[:0], j.outBuf[:0], false, nil
	gzipJobs.mu.Lock()
	if len(gzipJobs.idle) < maxIdleGzipJobs() {
		gzipJobs.idle = append(gzipJobs.idle, j)
		gzipJobs.mu.Unlock()
		return
	}
	gzipJobs.mu.Unlock()
	j.free()
}

// free unmaps j's buffers now instead of when j is collected.
func (j *gzipJob) free() {
	j.cleanup.Stop()
	freeJobBuffers([2][]byte{j.in, j.outBuf})
}

func freeJobBuffers(b [2][]byte) {
	offheap.Free(b[0])
	offheap.Free(b[1])
}

// trimIdleGzipJobs unmaps every idle job.
func trimIdleGzipJobs() {
	gzipJobs.mu.Lock()
	idle := gzipJobs.idle
	gzipJobs.idle = nil
	gzipJobs.mu.Unlock()
	for _, j := range idle {
		j.free()
	}
}
