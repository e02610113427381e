package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/lade-build/lade/internal/testutil"
)

// The daemons' roots live on a file system of the bench's own: a fresh,
// journaled ext4 image mounted on a loop device. On the host's root file
// system the measured CPU depended on what ran before: an ext4 without a
// journal does not reuse an inode freed in the last minute, so after the
// bench's prune (and the daemon's removal of released snapshots at
// start) every file a COPY creates scans those inodes one by one. That
// added 9-13 CPU-seconds to some builds of either daemon and none to
// others (profiled with perf: up to 58 % of a build in the inode scan).

// rootsImageSize is the sparse size of the roots' image: both daemons'
// content stores and snapshots at scale 1 need about 5 GB.
const rootsImageSize = 32 << 30

// mountRoots makes dir the mount point of a new journaled ext4 image in
// work, and returns the function that unmounts it and removes the image.
func mountRoots(work, dir string, scale float64) (func(), error) {
	img := filepath.Join(work, "roots.ext4")
	testutil.UnmountUnder(dir)
	_ = exec.Command("umount", dir).Run()
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	_ = os.Remove(img)
	f, err := os.Create(img)
	if err != nil {
		return nil, err
	}
	size := max(int64(float64(rootsImageSize)*max(scale, 0.25)), 8<<30)
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("roots image: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"mkfs.ext4", "-q", "-F", "-O", "has_journal", img},
		{"mount", "-o", "loop", img, dir},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			_ = os.Remove(img)
			return nil, fmt.Errorf("roots file system: %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return func() {
		testutil.UnmountUnder(dir)
		_ = exec.Command("umount", dir).Run()
		_ = os.Remove(img)
	}, nil
}
