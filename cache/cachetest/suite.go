package cachetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lade-build/lade/cache"
)

// Factory builds the top ref of a two-ref chain from fx: its parent is the
// bottom ref, whose layer holds all of fx.Lower and whose parent is nil, and
// its layer is the change from fx.Lower to fx.Upper. Run calls it with
// several fixtures.
type Factory func(t *testing.T, fx Fixture) cache.Ref

// Run runs the conformance suite against the source newRef builds refs
// from. Its subtests do not run in parallel (they count goroutines).
func Run(t *testing.T, newRef Factory) {
	fx := NewFixture(t, 0)
	top := newRef(t, fx)
	t.Run("Chain", func(t *testing.T) { testChain(t, top) })
	t.Run("Entries", func(t *testing.T) { testEntries(t, fx, top) })
	t.Run("Repeatable", func(t *testing.T) { testRepeatable(t, top) })
	t.Run("EarlyClose", func(t *testing.T) { testEarlyClose(t, top) })
	t.Run("Cancel", func(t *testing.T) { testCancel(t, top) })
	t.Run("ID", func(t *testing.T) { testID(t, top, newRef) })
	t.Run("Epoch", func(t *testing.T) { testEpoch(t, fx, top) })
	t.Run("Metadata", func(t *testing.T) { testMetadata(t, top) })
}

func testChain(t *testing.T, top cache.Ref) {
	bottom := top.Parent()
	if bottom == nil {
		t.Fatal("top ref has no parent")
	}
	if bottom.Parent() != nil {
		t.Fatalf("bottom ref has a parent: %s", bottom.Parent().ID())
	}
	chain := cache.Chain(top)
	if len(chain) != 2 || chain[0] != bottom || chain[1] != top {
		t.Fatalf("Chain(top) = %d refs, want [bottom top]", len(chain))
	}
	if got := cache.Chain(nil); len(got) != 0 {
		t.Fatalf("Chain(nil) = %d refs, want none", len(got))
	}
}

func testEntries(t *testing.T, fx Fixture, top cache.Ref) {
	CompareEntries(t, "bottom layer", Entries(t, top.Parent(), cache.DiffOptions{}), ExpectedLower(fx))
	CompareEntries(t, "top layer", Entries(t, top, cache.DiffOptions{}), ExpectedUpper(fx))
}

func testRepeatable(t *testing.T, top cache.Ref) {
	a := ReadDiff(t, top, cache.DiffOptions{})
	b := ReadDiff(t, top, cache.DiffOptions{})
	if !bytes.Equal(a, b) {
		t.Fatalf("two diffs differ: %d and %d bytes", len(a), len(b))
	}
	if len(a)%512 != 0 || len(a) < 1024 {
		t.Fatalf("diff of %d bytes is not a tar", len(a))
	}
}

func testEarlyClose(t *testing.T, top cache.Ref) {
	// The bottom layer's diff is larger than a copy buffer and a pipe
	// write, the top one is small.
	earlyClose(t, top.Parent(), []int{0, 1, 700, 40_000})
	earlyClose(t, top, []int{0, 1, 700})
	checkNoLeak(t)
}

func earlyClose(t *testing.T, r cache.Ref, sizes []int) {
	for _, n := range sizes {
		rc, err := r.Layer().Diff(context.Background(), cache.DiffOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rc, make([]byte, n)); err != nil {
			t.Fatalf("read %d bytes: %v", n, err)
		}
		for i := range 2 { // Close is idempotent
			if err := closeWithin(t, rc, 5*time.Second); err != nil {
				t.Fatalf("Close #%d after %d bytes: %v", i+1, n, err)
			}
		}
	}
}

func testCancel(t *testing.T, top cache.Ref) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc, err := top.Layer().Diff(ctx, cache.DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	cancel()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, rc)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("read after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read after cancel did not return")
	}
	closeWithin(t, rc, 5*time.Second)
	checkNoLeak(t)
}

func testID(t *testing.T, top cache.Ref, newRef Factory) {
	id := top.ID()
	if id == "" {
		t.Fatal("empty ID")
	}
	if top.Parent().ID() == id {
		t.Fatalf("bottom and top share ID %s", id)
	}
	ReadDiff(t, top, cache.DiffOptions{})
	if again := top.ID(); again != id {
		t.Fatalf("ID changed from %s to %s", id, again)
	}
	other := newRef(t, NewFixture(t, 1))
	if other.ID() == id {
		t.Fatalf("a changed top layer kept ID %s", id)
	}
}

func testEpoch(t *testing.T, fx Fixture, top cache.Ref) {
	epoch := fx.Old.Add(time.Hour).Truncate(time.Second)
	want := ExpectedUpper(fx)
	for i := range want {
		want[i] = clampEntry(want[i], epoch)
	}
	CompareEntries(t, "top layer with epoch", Entries(t, top, cache.DiffOptions{Epoch: &epoch}), want)

	early := time.Unix(1_000_000, 0)
	for _, e := range Entries(t, top.Parent(), cache.DiffOptions{Epoch: &early}) {
		if !e.ModTime.Equal(early) {
			t.Errorf("bottom layer with epoch %s: %s", early.UTC(), e)
		}
	}
}

func clampEntry(e Entry, epoch time.Time) Entry {
	for _, tm := range []*time.Time{&e.ModTime, &e.AccessTime, &e.ChangeTime} {
		if tm.After(epoch) {
			*tm = epoch
		}
	}
	return e
}

func testMetadata(t *testing.T, top cache.Ref) {
	for _, r := range cache.Chain(top) {
		if r.Description() == "" {
			t.Errorf("ref %s: empty Description", r.ID())
		}
		if r.Layer().Size() < 0 {
			t.Errorf("ref %s: negative Size %d", r.ID(), r.Layer().Size())
		}
		if blob, ok := r.Layer().Stored(); ok {
			if err := blob.Descriptor.Digest.Validate(); err != nil {
				t.Errorf("ref %s: stored blob digest: %v", r.ID(), err)
			}
			if err := blob.DiffID.Validate(); err != nil {
				t.Errorf("ref %s: stored blob diffID: %v", r.ID(), err)
			}
		}
	}
}

// ReadDiff reads r's whole diff.
func ReadDiff(t testing.TB, r cache.Ref, opts cache.DiffOptions) []byte {
	t.Helper()
	rc, err := r.Layer().Diff(context.Background(), opts)
	if err != nil {
		t.Fatalf("diff %s: %v", r.ID(), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read diff %s: %v", r.ID(), err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("close diff %s: %v", r.ID(), err)
	}
	return b
}

// Entries lists the entries of r's diff.
func Entries(t testing.TB, r cache.Ref, opts cache.DiffOptions) []Entry {
	t.Helper()
	es, err := ReadEntries(bytes.NewReader(ReadDiff(t, r, opts)))
	if err != nil {
		t.Fatalf("diff %s: %v", r.ID(), err)
	}
	return es
}

// CompareEntries fails t when got and want differ, listing both.
func CompareEntries(t testing.TB, what string, got, want []Entry) {
	t.Helper()
	g, w := render(got), render(want)
	if !slices.Equal(g, w) {
		t.Errorf("%s: entries differ\ngot:\n\t%s\nwant:\n\t%s", what, strings.Join(g, "\n\t"), strings.Join(w, "\n\t"))
	}
}

func render(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.String()
	}
	return out
}

func closeWithin(t testing.TB, c io.Closer, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("Close did not return within %s", d)
		return nil
	}
}

// leakMarkers are stack frames of goroutines a finished or closed diff must
// not leave behind.
var leakMarkers = []string{
	"github.com/lade-build/lade/cache.",
	"github.com/containerd/continuity/fs.",
	"github.com/klauspost/compress/",
}

// checkNoLeak fails t when goroutines of a diff are still running after a
// short grace period.
func checkNoLeak(t testing.TB) {
	t.Helper()
	var leaked []string
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		leaked = leakedGoroutines()
		if len(leaked) == 0 {
			return
		}
	}
	t.Fatalf("%d goroutines leaked:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
}

func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, m := range leakMarkers {
			if strings.Contains(g, m) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}
