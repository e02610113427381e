package writeback

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
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

// fakeWriter is a content.Writer whose Sync blocks until released and
// which records the calls made to it.
type fakeWriter struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	syncs     int
	inSync    int // syncs running now
	maxInSync int
	release   chan struct{} // a Sync waits for a receive (nil: returns at once)
	syncErr   error
	committed bool
	closed    bool
	// syncingAtCommit records whether a Sync was running when Commit or
	// Close was called.
	syncingAtCommit bool
}

func (f *fakeWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.Write(p)
}

func (f *fakeWriter) Sync() error {
	f.mu.Lock()
	f.syncs++
	f.inSync++
	f.maxInSync = max(f.maxInSync, f.inSync)
	release := f.release
	f.mu.Unlock()
	if release != nil {
		<-release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inSync--
	return f.syncErr
}

func (f *fakeWriter) Commit(context.Context, int64, digest.Digest, ...content.Opt) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncingAtCommit = f.syncingAtCommit || f.inSync > 0
	f.committed = true
	return nil
}

func (f *fakeWriter) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncingAtCommit = f.syncingAtCommit || f.inSync > 0
	f.closed = true
	return nil
}

func (f *fakeWriter) Digest() digest.Digest           { return digest.FromBytes(f.buf.Bytes()) }
func (f *fakeWriter) Status() (content.Status, error) { return content.Status{}, nil }
func (f *fakeWriter) Truncate(int64) error            { return nil }

func (f *fakeWriter) counts() (syncs, maxInSync int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs, f.maxInSync
}

// plainWriter is a content.Writer that cannot sync.
type plainWriter struct{ content.Writer }

func TestWrapWithoutSyncReturnsWriter(t *testing.T) {
	w := plainWriter{}
	if got := Wrap(w, 10); got != content.Writer(w) {
		t.Fatalf("Wrap of a writer without Sync = %T, want the writer itself", got)
	}
	if _, ok := Wrap(&fakeWriter{}, 10).(*Writer); !ok {
		t.Fatal("Wrap of a writer with Sync did not wrap it")
	}
}

func TestSyncsBehindWrites(t *testing.T) {
	f := &fakeWriter{}
	w := Wrap(f, 100)
	for range 10 {
		if _, err := w.Write(make([]byte, 50)); err != nil {
			t.Fatal(err)
		}
		// Let each background sync finish before the next write, so
		// every threshold crossing starts one.
		if err := w.(*Writer).wait(); err != nil {
			t.Fatal(err)
		}
	}
	if syncs, _ := f.counts(); syncs != 5 {
		t.Fatalf("500 bytes written with a sync every 100: %d syncs, want 5", syncs)
	}
	if err := w.Commit(context.Background(), 0, ""); err != nil {
		t.Fatal(err)
	}
	if f.buf.Len() != 500 || !f.committed {
		t.Fatalf("wrote %d bytes, committed %v", f.buf.Len(), f.committed)
	}
}

func TestOneSyncAtATimeAndCommitWaits(t *testing.T) {
	f := &fakeWriter{release: make(chan struct{})}
	w := Wrap(f, 10)
	// The first write starts a sync that blocks; the next ones must
	// neither block nor start another.
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
		t.Fatal("writes blocked behind a running sync")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if syncs, _ := f.counts(); syncs > 0 || time.Now().After(deadline) {
			break
		}
	}
	if syncs, maxIn := f.counts(); syncs != 1 || maxIn != 1 {
		t.Fatalf("while a sync runs: %d syncs started, %d at once; want 1, 1", syncs, maxIn)
	}
	committed := make(chan error, 1)
	go func() { committed <- w.Commit(context.Background(), 0, "") }()
	select {
	case err := <-committed:
		t.Fatalf("Commit returned (%v) while a sync was running", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(f.release)
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if f.syncingAtCommit {
		t.Fatal("Commit reached the writer while a sync was running")
	}
}

func TestFailedSyncFailsCommitNotClose(t *testing.T) {
	bad := errors.New("disk full")
	f := &fakeWriter{syncErr: bad}
	w := Wrap(f, 10)
	if _, err := w.Write(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background(), 0, ""); !errors.Is(err, bad) {
		t.Fatalf("Commit after a failed background sync = %v, want %v", err, bad)
	}
	if f.committed {
		t.Fatal("the blob was committed although a sync failed")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close after a failed sync = %v, want nil (the blob is abandoned)", err)
	}
	if !f.closed {
		t.Fatal("Close did not close the writer")
	}
}

// TestContainerdStores writes blobs through containerd's local content
// store and its metadata store over it, syncing often, while the race
// detector watches the concurrent Sync and Write.
func TestContainerdStores(t *testing.T) {
	cs, meta := testutil.ContentStores(t)
	ctx := namespaces.WithNamespace(context.Background(), "test")
	for name, store := range map[string]content.Store{"local": cs, "metadata": meta} {
		t.Run(name, func(t *testing.T) {
			data := make([]byte, 24<<20+123)
			if _, err := rand.Read(data); err != nil {
				t.Fatal(err)
			}
			cw, err := content.OpenWriter(ctx, store, content.WithRef("writeback-"+name))
			if err != nil {
				t.Fatal(err)
			}
			w := Wrap(cw, 1<<20)
			if _, ok := w.(*Writer); !ok {
				t.Fatalf("containerd's %s writer %T cannot sync", name, cw)
			}
			if _, err := io.CopyBuffer(w, bytes.NewReader(data), make([]byte, 64<<10)); err != nil {
				t.Fatal(err)
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
		})
	}
}

// TestEveryFromEnv: the background syncs are off unless EveryEnv names a
// whole number of MiB, and a malformed value is an error naming it.
func TestEveryFromEnv(t *testing.T) {
	// Wrap with no interval and no environment (envEvery is read once per
	// process) leaves a syncing writer unwrapped.
	if os.Getenv(EveryEnv) == "" {
		if _, ok := Wrap(&fakeWriter{}, 0).(*Writer); ok {
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
