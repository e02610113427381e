package imagestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Environment of a child process started by TestConcurrentProcesses.
const (
	childRootEnv = "LADE_IMAGE_TEST_CHILD_ROOT"
	childIDEnv   = "LADE_IMAGE_TEST_CHILD_ID"
)

// childBlobs is how many extra blobs each simulated export writes.
const childBlobs = 6

// childExport plays one `lade export`: open the store, write blobs under a
// lease from a few goroutines (one blob shared by every exporter, to race on
// the same digest), write an image, name it, release the lease, close.
func childExport(ctx context.Context, root, id string) (err error) {
	s, err := Open(ctx, root)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	lctx, release, err := s.WithLease(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, release(context.WithoutCancel(ctx))) }()
	var wg sync.WaitGroup
	errs := make([]error, childBlobs)
	for i := range childBlobs {
		wg.Go(func() {
			data := fmt.Appendf(nil, "blob %s/%d", id, i)
			if i == 0 {
				data = []byte("shared by every exporter")
			}
			_, errs[i] = putBlob(lctx, s.Content(), "application/octet-stream", data, nil)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	img, err := writeImage(lctx, s.Content(), id)
	if err != nil {
		return err
	}
	return s.SetImage(ctx, "child-"+id, img.Manifest)
}

// TestConcurrentProcesses runs 8 processes (this test binary, see TestMain)
// exporting into one root at once: all must succeed, with every image and
// its content in the store and a clean Check.
func TestConcurrentProcesses(t *testing.T) {
	t.Parallel()
	const n = 8
	root := filepath.Join(t.TempDir(), "root")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childRootEnv+"="+root, fmt.Sprintf("%s=%d", childIDEnv, i))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("child %d: %w: %s", i, err, out)
			}
		})
	}
	wg.Wait()
	t.Logf("%d processes done in %v", n, time.Since(start))
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	verifyExports(t, root, n)
}

// TestConcurrentStoresInProcess opens several Stores on one root in one
// process; their transactions serialize on the lock file.
func TestConcurrentStoresInProcess(t *testing.T) {
	t.Parallel()
	const n = 3
	root := filepath.Join(t.TempDir(), "root")
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = childExport(context.Background(), root, fmt.Sprint(i)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	verifyExports(t, root, n)
}

// verifyExports checks the result of n childExports into root; Prune keeps
// every image's content and removes the leased-only blobs.
func verifyExports(t *testing.T, root string, n int) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	list, err := s.ListImages(ctx)
	if err != nil || len(list) != n {
		t.Fatalf("ListImages = %d images, %v; want %d", len(list), err, n)
	}
	if faults, err := s.Check(ctx); err != nil || len(faults) != 0 {
		t.Fatalf("Check = %v, %v", faults, err)
	}
	st, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := n*(childBlobs-1) + 1; st.Blobs != want {
		t.Errorf("Prune removed %d blobs, want the %d leased-only ones", st.Blobs, want)
	}
	if faults, err := s.Check(ctx); err != nil || len(faults) != 0 {
		t.Fatalf("Check after Prune = %v, %v", faults, err)
	}
	if list, err := s.ListImages(ctx); err != nil || len(list) != n {
		t.Fatalf("ListImages after Prune = %d, %v", len(list), err)
	}
}
