package imagestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/content/testsuite"
)

// TestContentSuite runs containerd's content store conformance suite
// against Store.Content(): Writer, UpdateStatus, CommitExists, the Resume*
// cases, SmallBlob, Labels (persisted by the metadata database) and
// CommitErrorState. The suite's contexts carry no namespace, which the
// Store supplies. The cross-namespace suites do not apply: a Store has one
// namespace.
func TestContentSuite(t *testing.T) {
	t.Parallel()
	testsuite.ContentSuite(t, "lade", func(ctx context.Context, root string) (context.Context, content.Store, func() error, error) {
		s, err := Open(ctx, root)
		if err != nil {
			return nil, nil, nil, err
		}
		return ctx, s.Content(), s.Close, nil
	})
}

func TestLabelsPersistAcrossOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := putBlob(ctx, s.Content(), "application/octet-stream", []byte("x"),
		map[string]string{"containerd.io/uncompressed": "sha256:abc"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Content().Info(ctx, desc.Digest); err == nil {
		t.Fatal("Info on a closed store succeeded")
	}
	s, err = Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info, err := s.Content().Info(ctx, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Labels["containerd.io/uncompressed"]; got != "sha256:abc" {
		t.Fatalf("label after reopen = %q", got)
	}
}

func TestOpenCreatesPrivateRoot(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "a", "b")
	s, err := Open(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("root mode %v, want 0700", st.Mode().Perm())
	}
	for _, f := range []string{"lock", "metadata.db", "content"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}

func TestContentForcesNamespace(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	desc, err := putBlob(ctx, s.Content(), "application/octet-stream", []byte("ns"), nil)
	if err != nil {
		t.Fatal(err)
	}
	other := context.WithValue(ctx, struct{}{}, 1)
	if _, err := s.Content().Info(other, desc.Digest); err != nil {
		t.Fatalf("Info with a plain context: %v", err)
	}
}

func TestWithLeaseReleaseIdempotent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	_, release, err := s.WithLease(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := release(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDefaultRoot(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/xdg")
	if got := DefaultRoot(); got != "/xdg/lade" {
		t.Errorf("with XDG_DATA_HOME: %q", got)
	}
	t.Setenv("XDG_DATA_HOME", "relative")
	t.Setenv("HOME", "/home/u")
	if got := DefaultRoot(); got != "/home/u/.local/share/lade" {
		t.Errorf("with HOME: %q", got)
	}
}

func TestOpenWaitsForPrune(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	if err := s.lockExclusive(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Open(ctx, s.Root()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open during Prune: %v, want deadline exceeded", err)
	}
	s.lockShared()
	s2, err := Open(context.Background(), s.Root())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	// Prune waits for s2 (a running export) and gives up with ctx.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := s.Prune(ctx2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Prune with another Store open: %v, want deadline exceeded", err)
	}
	// Both Stores still work, and s holds its shared lock again.
	for _, st := range []*Store{s, s2} {
		if _, err := putBlob(context.Background(), st.Content(), "text/plain", []byte(st.Root()+time.Now().String()), nil); err != nil {
			t.Fatalf("write after a failed Prune: %v", err)
		}
	}
	if !s.lock.RLocked() {
		t.Fatal("shared lock not taken back after a failed Prune")
	}
}
