package writeback

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/lade-build/lade/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// call is one write-back start.
type call struct {
	file   string // the started file's path, from /proc/self/fd
	ref    string // the ref file beside it, read at the call
	off, n int64
}

// recordStarts replaces startRange for the test: each call is recorded,
// then waits for a receive on hold if hold is not nil.
func recordStarts(t *testing.T, hold chan struct{}) func() []call {
	t.Helper()
	var mu sync.Mutex
	var calls []call
	orig := startRange
	startRange = func(f *os.File, off, n int64) {
		path, _ := os.Readlink(filepath.Join("/proc/self/fd", strconvFd(f)))
		ref, _ := os.ReadFile(filepath.Join(filepath.Dir(path), "ref"))
		mu.Lock()
		calls = append(calls, call{file: path, ref: string(ref), off: off, n: n})
		mu.Unlock()
		if hold != nil {
			<-hold
		}
		orig(f, off, n) // the real call too: it must not fail the blob
	}
	t.Cleanup(func() { startRange = orig })
	return func() []call {
		mu.Lock()
		defer mu.Unlock()
		return append([]call(nil), calls...)
	}
}

func strconvFd(f *os.File) string { return strconv.Itoa(int(f.Fd())) }

// writeBlob writes data to store under ref through Wrap(every) in 64 KiB
// writes, waiting for each write-back call so that every interval starts
// one, commits, and checks the committed blob.
func writeBlob(t *testing.T, ctx context.Context, store content.Store, ref string, data []byte, every int64) *Writer {
	t.Helper()
	cw, err := content.OpenWriter(ctx, store, content.WithRef(ref))
	if err != nil {
		t.Fatal(err)
	}
	w, ok := Wrap(cw, every).(*Writer)
	if !ok {
		t.Fatal("Wrap with an interval did not wrap the writer")
	}
	for r := bytes.NewReader(data); r.Len() > 0; {
		if _, err := io.CopyN(w, r, min(64<<10, int64(r.Len()))); err != nil {
			t.Fatal(err)
		}
		w.wait()
	}
	want := digest.FromBytes(data)
	if err := w.Commit(ctx, int64(len(data)), want); err != nil {
		t.Fatal(err)
	}
	w.Close()
	got, err := content.ReadBlob(ctx, store, ocispec.Descriptor{Digest: want, Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the committed blob differs from what was written")
	}
	return w
}

// TestStartsBehindWrites writes blobs through containerd's local content
// store and its metadata store over it (whose ingest refs are
// "namespace/sequence/ref"): the write-back must be started on the
// ingest's own data file, over consecutive ranges covering every interval
// written, and the blob must commit unchanged.
func TestStartsBehindWrites(t *testing.T) {
	cs, meta := testutil.ContentStores(t)
	ctx := namespaces.WithNamespace(context.Background(), "test")
	for name, store := range map[string]content.Store{"local": cs, "metadata": meta} {
		t.Run(name, func(t *testing.T) {
			starts := recordStarts(t, nil)
			data := make([]byte, 5<<20+123)
			if _, err := rand.Read(data); err != nil {
				t.Fatal(err)
			}
			// A second open ingest whose ref ends like this one's must
			// not be taken for it.
			other, err := content.OpenWriter(ctx, store, content.WithRef("x-writeback-"+name))
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			if _, err := other.Write([]byte("other")); err != nil {
				t.Fatal(err)
			}
			w := writeBlob(t, ctx, store, "writeback-"+name, data, 1<<20)
			calls := starts()
			if len(calls) != 5 {
				t.Fatalf("5 MiB written with a start every MiB: %d starts (%v), want 5", len(calls), calls)
			}
			var next int64
			for _, c := range calls {
				if c.off != next || c.n < 1<<20 {
					t.Fatalf("starts %v: not consecutive ranges of at least 1 MiB from 0", calls)
				}
				next = c.off + c.n
				if filepath.Base(c.file) != "data" || !strings.Contains(c.file, "/ingest/") {
					t.Fatalf("write-back started on %q, not an ingest's data file", c.file)
				}
				if !strings.HasSuffix(c.ref, "writeback-"+name) || strings.HasSuffix(c.ref, "x-writeback-"+name) {
					t.Fatalf("write-back started on the ingest of %q, want writeback-%s's", c.ref, name)
				}
			}
			if w.file != nil {
				t.Fatal("the ingest file stays open after Commit")
			}
		})
	}
}

// memWriter is a content.Writer of a store with no ingest file.
type memWriter struct {
	bytes.Buffer
	committed, closed bool
}

func (m *memWriter) Commit(context.Context, int64, digest.Digest, ...content.Opt) error {
	m.committed = true
	return nil
}
func (m *memWriter) Close() error          { m.closed = true; return nil }
func (m *memWriter) Digest() digest.Digest { return digest.FromBytes(m.Bytes()) }
func (m *memWriter) Status() (content.Status, error) {
	return content.Status{Ref: "mem", Offset: int64(m.Len())}, nil
}
func (m *memWriter) Truncate(int64) error { return nil }

// TestNoIngestFileWritesThrough: a store with no ingest file in this
// process gets its bytes unchanged and no write-back call.
func TestNoIngestFileWritesThrough(t *testing.T) {
	starts := recordStarts(t, nil)
	m := &memWriter{}
	w := Wrap(m, 10)
	for range 10 {
		if _, err := w.Write(make([]byte, 7)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(context.Background(), 70, ""); err != nil {
		t.Fatal(err)
	}
	if m.Len() != 70 || !m.committed || len(starts()) != 0 {
		t.Fatalf("wrote %d bytes, committed %v, %d write-back calls; want 70, true, 0", m.Len(), m.committed, len(starts()))
	}
}

// TestOneStartAtATimeAndCommitWaits: while a write-back call runs, writes
// neither block nor start another, and Commit waits for it.
func TestOneStartAtATimeAndCommitWaits(t *testing.T) {
	hold := make(chan struct{})
	starts := recordStarts(t, hold)
	cs, _ := testutil.ContentStores(t)
	ctx := context.Background()
	cw, err := content.OpenWriter(ctx, cs, content.WithRef("held"))
	if err != nil {
		t.Fatal(err)
	}
	w := Wrap(cw, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			if _, err := w.Write(make([]byte, 10)); err != nil {
				t.Error(err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writes blocked behind a running write-back call")
	}
	for deadline := time.Now().Add(10 * time.Second); len(starts()) == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := len(starts()); n != 1 {
		t.Fatalf("while a write-back call runs: %d started, want 1", n)
	}
	committed := make(chan error, 1)
	go func() { committed <- w.Commit(ctx, 200, digest.FromBytes(make([]byte, 200))) }()
	select {
	case err := <-committed:
		t.Fatalf("Commit returned (%v) while a write-back call was running", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(hold)
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
}

// TestEveryFromEnv: there is no interval unless EveryEnv names a whole
// number of MiB, and a malformed value is an error naming it.
func TestEveryFromEnv(t *testing.T) {
	if os.Getenv(EveryEnv) == "" {
		if _, ok := Wrap(&memWriter{}, 0).(*Writer); ok {
			t.Error("Wrap with no interval and no environment wrapped the writer")
		}
	}
	for _, c := range []struct {
		v    string
		want int64
		err  bool
	}{
		{"", 0, false}, {"0", 0, false}, {"32", 32 << 20, false}, {" 8 ", 8 << 20, false},
		{"32MiB", 0, true}, {"-1", 0, true}, {"x", 0, true},
	} {
		t.Setenv(EveryEnv, c.v)
		got, err := defaultEvery()
		if got != c.want || (err != nil) != c.err {
			t.Errorf("%s=%q: %d, %v; want %d, error %v", EveryEnv, c.v, got, err, c.want, c.err)
		}
		if err != nil && !strings.Contains(err.Error(), EveryEnv) {
			t.Errorf("%s=%q: error %q does not name the variable", EveryEnv, c.v, err)
		}
		if cerr := CheckEnv(); (cerr != nil) != c.err {
			t.Errorf("%s=%q: CheckEnv %v, want an error %v", EveryEnv, c.v, cerr, c.err)
		}
	}
}
