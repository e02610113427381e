package buildkit

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestAdmitDiff: at most GOMAXPROCS layers are admitted at once; one more
// waits until a slot is released, and gives up with its context's cause.
func TestAdmitDiff(t *testing.T) {
	n := runtime.GOMAXPROCS(0)
	var releases []func()
	for range n {
		release, err := admitDiff(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	cause := errors.New("the export was cancelled")
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(50*time.Millisecond, func() { cancel(cause) })
	if _, err := admitDiff(ctx); !errors.Is(err, cause) || !strings.Contains(err.Error(), "waiting for a free core") {
		t.Fatalf("layer %d of %d cores: %v, want it to wait and fail with the context's cause", n+1, n, err)
	}
	admitted := make(chan func())
	go func() {
		release, err := admitDiff(context.Background())
		if err != nil {
			t.Error(err)
		}
		admitted <- release
	}()
	select {
	case <-admitted:
		t.Fatalf("layer %d admitted while %d hold every slot", n+1, n)
	case <-time.After(50 * time.Millisecond):
	}
	releases[0]()
	select {
	case release := <-admitted:
		release()
	case <-time.After(10 * time.Second):
		t.Fatal("a released slot did not admit the waiting layer")
	}
	for _, release := range releases[1:] {
		release()
	}
}
