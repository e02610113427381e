package cache_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cfs "github.com/containerd/continuity/fs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/cache/cachetest"
)

// walkDirs is a change source diffing two directories (lower "" is empty).
func walkDirs(lower, upper string) cache.ChangeSource {
	return func(ctx context.Context, write cache.WriteChanges) error {
		return write(upper, func(ctx context.Context, fn cfs.ChangeFunc) error {
			return cfs.Changes(ctx, lower, upper, fn)
		})
	}
}

// changesChain returns fx's two layers as ChangesRefs.
func changesChain(t testing.TB, fx cachetest.Fixture) (bottom, top *cache.ChangesRef) {
	t.Helper()
	bottom, err := cache.NewChangesRef("test:"+fx.Lower, walkDirs("", fx.Lower), cache.ChangesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	top, err = cache.NewChangesRef("test:"+fx.Upper, walkDirs(fx.Lower, fx.Upper), cache.ChangesOptions{Parent: bottom})
	if err != nil {
		t.Fatal(err)
	}
	return bottom, top
}

func TestConformanceChanges(t *testing.T) {
	cachetest.Run(t, func(t *testing.T, fx cachetest.Fixture) cache.Ref {
		_, top := changesChain(t, fx)
		return top
	})
}

// TestChangesMatchesDir: for the same changes, a ChangesRef writes the
// directory diff's bytes, with and without an epoch.
func TestChangesMatchesDir(t *testing.T) {
	fx := cachetest.NewFixture(t, 0)
	dBottom, dTop := dirChain(t, fx)
	cBottom, cTop := changesChain(t, fx)
	epoch := fx.Old.Add(time.Hour).Truncate(time.Second)
	for _, ep := range []*time.Time{nil, &epoch} {
		for _, pair := range [][2]cache.Ref{{dBottom, cBottom}, {dTop, cTop}} {
			want := cachetest.ReadDiff(t, pair[0], cache.DiffOptions{Epoch: ep})
			got := cachetest.ReadDiff(t, pair[1], cache.DiffOptions{Epoch: ep})
			if !bytes.Equal(got, want) {
				t.Fatalf("%s (epoch %v): %d bytes, directory diff %d", pair[1].ID(), ep, len(got), len(want))
			}
		}
	}
}

// TestChangesSourceContract: a source's error, a source that never writes
// or writes twice fail the diff; what the source prepared is released
// before the reader sees EOF.
func TestChangesSourceContract(t *testing.T) {
	fx := cachetest.NewFixture(t, 0)
	boom := errors.New("mount failed")
	released := false
	for _, tc := range []struct {
		name string
		src  cache.ChangeSource
		want string
	}{
		{"error", func(context.Context, cache.WriteChanges) error { return boom }, "mount failed"},
		{"no write", func(context.Context, cache.WriteChanges) error { return nil }, "did not write"},
		{"twice", func(ctx context.Context, write cache.WriteChanges) error {
			if err := walkDirs("", fx.Lower)(ctx, write); err != nil {
				return err
			}
			return walkDirs("", fx.Lower)(ctx, write)
		}, "twice"},
		{"released", func(ctx context.Context, write cache.WriteChanges) error {
			defer func() { released = true }()
			return walkDirs("", fx.Lower)(ctx, write)
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := readChanges(t, "test:"+tc.name, tc.src)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want == "" && !released:
				t.Fatal("EOF before the source released what it prepared")
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := cache.NewChangesRef("", walkDirs("", fx.Lower), cache.ChangesOptions{}); err == nil {
		t.Fatal("empty ID accepted")
	}
	if _, err := cache.NewChangesRef("x", nil, cache.ChangesOptions{}); err == nil {
		t.Fatal("nil source accepted")
	}
}

// TestChangesOtherFile: a walk whose FileInfo is not the file under the
// root (another inode) fails instead of writing the wrong content.
func TestChangesOtherFile(t *testing.T) {
	root, other := t.TempDir(), t.TempDir()
	for _, d := range []string{root, other} {
		if err := os.WriteFile(filepath.Join(d, "f"), []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Lstat(filepath.Join(other, "f"))
	if err != nil {
		t.Fatal(err)
	}
	wantChangedFile(t, "test:other", root, fi)
}

// wantChangedFile diffs a walk that reports the file root/f, added, with
// the FileInfo fi, and fails unless the diff refuses it as a file that
// changed since the walk saw it.
func wantChangedFile(t *testing.T, id, root string, fi os.FileInfo) {
	t.Helper()
	src := func(ctx context.Context, write cache.WriteChanges) error {
		return write(root, func(ctx context.Context, fn cfs.ChangeFunc) error {
			return fn(cfs.ChangeKindAdd, "/f", fi, nil)
		})
	}
	if err := readChanges(t, id, src); err == nil || !strings.Contains(err.Error(), "changed while the diff was written") {
		t.Fatalf("error %v, want a changed-file error", err)
	}
}

// readChanges makes a ChangesRef of src and reads its whole diff,
// returning the error of the read.
func readChanges(t *testing.T, id string, src cache.ChangeSource) error {
	t.Helper()
	r, err := cache.NewChangesRef(id, src, cache.ChangesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := r.Diff(context.Background(), cache.DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = io.ReadAll(rc)
	return err
}
