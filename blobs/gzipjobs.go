package blobs

import (
	"runtime"
	"sync"

	"github.com/lade-build/lade/internal/offheap"
)

// gzipOutCap is the output capacity of a native gzip block: the larger of
// the native encoders' bounds for a full block (ISA-L's, isal.Bound;
// libdeflate's gzip bound is about 1 KiB over the input).
const gzipOutCap = gzipBlock + gzipBlock>>4 + 1024

// gzipJob is one native gzip block in flight. Its input buffer, and the
// output buffer it borrows while its block is encoded, are mapped outside
// the Go heap (offheap): a layer keeps one to three blocks of about 1 MiB
// in flight, which on the heap would also raise the garbage collector's
// heap goal by as much while layers compress.
type gzipJob struct {
	in, dict, out []byte
	ob            *outBuf // borrowed from run until release; out may be longer than its buffer
	final         bool
	stored        bool   // the block is written stored, from in (writeStored)
	crc           uint32 // in's CRC-32 when stored
	err           error
	done          chan struct{}
	cleanup       runtime.Cleanup // unmaps the input of a job dropped without release
}

// outBuf is a block's mapped output buffer. A block borrows one only
// while it is encoded (see settle), so the buffers in use number the
// blocks being encoded (at most GOMAXPROCS, see encoding), not one per
// layer.
type outBuf struct {
	b       []byte
	cleanup runtime.Cleanup // unmaps the buffer of a job dropped while borrowing it
}

// gzipJobs keeps the jobs and output buffers of finished blocks for the
// next ones while layers are being compressed: at most maxIdleGzipJobs of
// each, and none once no layer is (trimIdleGzipJobs), so the daemon does
// not keep their memory between exports.
var gzipJobs struct {
	mu   sync.Mutex
	idle []*gzipJob
	outs []*outBuf
	// mapped counts the output buffers mapped and not yet unmapped by
	// free (a buffer left to its cleanup stays counted): for tests.
	mapped int
}

// maxIdleGzipJobs bounds the idle jobs: enough for every core's block
// and the blocks waiting to be written.
func maxIdleGzipJobs() int { return 2*runtime.GOMAXPROCS(0) + 2 }

// takeIdle pops the last of idle, under gzipJobs.mu; ok is false when
// there is none. count, when not nil, is raised by one when there is none
// (the caller maps a new one).
func takeIdle[T any](idle *[]T, count *int) (v T, ok bool) {
	gzipJobs.mu.Lock()
	defer gzipJobs.mu.Unlock()
	n := len(*idle)
	if n == 0 {
		if count != nil {
			*count++
		}
		return v, false
	}
	v = (*idle)[n-1]
	*idle = (*idle)[:n-1]
	return v, true
}

// keepIdle appends v to idle, under gzipJobs.mu, unless maxIdleGzipJobs
// are there already; the caller frees what is not kept.
func keepIdle[T any](idle *[]T, v T) bool {
	gzipJobs.mu.Lock()
	defer gzipJobs.mu.Unlock()
	if len(*idle) >= maxIdleGzipJobs() {
		return false
	}
	*idle = append(*idle, v)
	return true
}

// newGzipJob returns an empty job, reused or newly mapped.
func newGzipJob() *gzipJob {
	if j, ok := takeIdle(&gzipJobs.idle, nil); ok {
		return j
	}
	in := offheap.Alloc(gzipBlock)
	j := &gzipJob{in: in[:0], done: make(chan struct{}, 1)}
	// A writer dropped without Close leaves its jobs to the collector:
	// their maps go with them.
	j.cleanup = runtime.AddCleanup(j, offheap.Free, in)
	return j
}

// borrowOut gives j an output buffer, reused or newly mapped.
func (j *gzipJob) borrowOut() []byte {
	if ob, ok := takeIdle(&gzipJobs.outs, &gzipJobs.mapped); ok {
		j.ob = ob
		return ob.b[:0]
	}
	b := offheap.Alloc(gzipOutCap)
	j.ob = &outBuf{b: b}
	j.ob.cleanup = runtime.AddCleanup(j.ob, offheap.Free, b)
	return b[:0]
}

// settle moves an encoded block into the block's own input buffer, which
// the encoder is done with (the next block's dictionary was copied at
// submit), and gives the output buffer back at once: output buffers are
// then held only while blocks are encoded, at most GOMAXPROCS of them, not
// also while encoded blocks wait to be written in order. The copy is of
// the compressed bytes, a fraction of a percent of the encoding's CPU. A
// block larger than its input keeps its output buffer.
func (j *gzipJob) settle() {
	if j.ob == nil || len(j.out) > cap(j.in) {
		return
	}
	j.in = append(j.in[:0], j.out...)
	j.out = j.in
	putOut(j.ob)
	j.ob = nil
}

// releaseGzipJob keeps j and its output buffer for other blocks, or
// unmaps them when enough are idle. Nothing may use j afterwards.
func releaseGzipJob(j *gzipJob) {
	ob := j.ob
	j.in, j.dict, j.out, j.ob, j.final, j.stored, j.err = j.in[:0], j.dict[:0], nil, nil, false, false, nil
	if !keepIdle(&gzipJobs.idle, j) {
		j.free()
	}
	if ob != nil {
		putOut(ob)
	}
}

// putOut keeps an output buffer for other blocks, or unmaps it when
// enough are idle.
func putOut(ob *outBuf) {
	if !keepIdle(&gzipJobs.outs, ob) {
		ob.free()
	}
}

// free unmaps j's input now instead of when j is collected.
func (j *gzipJob) free() {
	j.cleanup.Stop()
	offheap.Free(j.in[:cap(j.in)])
}

// free unmaps the buffer now instead of when it is collected.
func (ob *outBuf) free() {
	ob.cleanup.Stop()
	offheap.Free(ob.b)
	gzipJobs.mu.Lock()
	gzipJobs.mapped--
	gzipJobs.mu.Unlock()
}

// trimIdleGzipJobs unmaps every idle job and output buffer.
func trimIdleGzipJobs() {
	gzipJobs.mu.Lock()
	idle, outs := gzipJobs.idle, gzipJobs.outs
	gzipJobs.idle, gzipJobs.outs = nil, nil
	gzipJobs.mu.Unlock()
	for _, j := range idle {
		j.free()
	}
	for _, ob := range outs {
		ob.free()
	}
}
