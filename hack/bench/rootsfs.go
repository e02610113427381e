package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lade-build/lade/internal/testutil"
	"golang.org/x/sys/unix"
)

// The daemons' roots live on a file system of the bench's own: a fresh,
// journaled ext4 image mounted on a loop device. On the host's root file
// system the measured CPU depended on what ran before: an ext4 without a
// journal does not reuse an inode freed in the last minute, so after the
// bench's prune (and the daemon's removal of released snapshots at
// start) every file a COPY creates scans those inodes one by one. That
// added 9-13 CPU-seconds to some builds of either daemon and none to
// others (profiled with perf: up to 58 % of a build in the inode scan).
//
// The loop device does direct I/O on its image file. Through the host's
// page cache, every flush of the journaled file system (each fsync of a
// blob or a database) became an fsync of the whole image file, which
// wrote back whatever the earlier cases had left dirty in the host's
// cache: the uncompressed case, mostly fsyncs, took 0.7 s in a run of its
// own and 3.1 s after the gzip and zstd cases, in either daemon. With
// direct I/O the image behaves like a disk of its own.

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
	detachLoops(img)
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
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-O", "has_journal", img).CombinedOutput(); err != nil {
		_ = os.Remove(img)
		return nil, fmt.Errorf("roots file system: mkfs.ext4: %w: %s", err, out)
	}
	dev, err := exec.Command("losetup", "--direct-io=on", "--find", "--show", img).Output()
	if err != nil {
		_ = os.Remove(img)
		return nil, fmt.Errorf("roots file system: losetup --direct-io=on %s: %w", img, err)
	}
	loop := strings.TrimSpace(string(dev))
	if out, err := exec.Command("mount", loop, dir).CombinedOutput(); err != nil {
		_ = exec.Command("losetup", "-d", loop).Run()
		_ = os.Remove(img)
		return nil, fmt.Errorf("roots file system: mount %s %s: %w: %s", loop, dir, err, out)
	}
	return func() {
		testutil.UnmountUnder(dir)
		_ = exec.Command("umount", dir).Run()
		_ = exec.Command("losetup", "-d", loop).Run()
		_ = os.Remove(img)
	}, nil
}

// detachLoops detaches the loop devices an earlier run left on img.
func detachLoops(img string) {
	out, _ := exec.Command("losetup", "--associated", img, "--noheadings", "--output", "NAME").Output()
	for _, dev := range strings.Fields(string(out)) {
		_ = exec.Command("losetup", "-d", dev).Run()
	}
}

// diskProbeBytes is the size of the file diskRate writes.
const diskProbeBytes = 512 << 20

// diskRate measures the roots' file system's sequential write rate the
// way a content store writes a blob: 1 MiB writes to a new file, then
// fsync (containerd syncs every blob it commits). Every exporter must get
// its blobs to the disk, so blob bytes over this rate are a floor of the
// export's wall time beside its CPU floor. It also returns the CPU time
// the writing process spent per byte (the copies into the page cache and
// the file system's work in the write and fsync calls): the floor's write
// stage, which every exporter pays for its blob bytes.
func diskRate(dir string) (bytesPerSec, cpuPerByte float64, err error) {
	f, err := os.CreateTemp(dir, "disk-probe-")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i*7 + i>>9)
	}
	unix.Sync()
	start, cpu := time.Now(), cpuTime()
	for n := 0; n < diskProbeBytes; n += len(buf) {
		if _, err := f.Write(buf); err != nil {
			return 0, 0, fmt.Errorf("disk probe: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return 0, 0, fmt.Errorf("disk probe: %w", err)
	}
	return diskProbeBytes / time.Since(start).Seconds(), (cpuTime() - cpu).Seconds() / diskProbeBytes, nil
}
