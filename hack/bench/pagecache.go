package main

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// dropPageCache writes back and evicts the page cache of the named files
// in dir, so that every daemon maps its binary from pages the kernel reads
// in on demand, as a deployed binary's are.
//
// A freshly linked binary's page cache is what its linker left: lade's
// daemons are linked by the external linker (cgo, -tags native), whose
// writes leave large folios, and mapping a large folio makes all of its
// pages resident at once. Stock buildkitd, linked by Go's own linker, does
// not get them. Without this, lade-buildkitd started with about 16 MiB more
// of its binary resident than after an eviction (VmRSS 65 against 49 MiB
// idle; stock 50), which the peak RSS of every case counted.
func dropPageCache(dir string, names ...string) error {
	for _, name := range names {
		if err := dropFilePageCache(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// dropFilePageCache syncs the file (only clean pages can be dropped) and
// asks the kernel to drop its cached pages.
func dropFilePageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("drop page cache: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("drop page cache: sync %s: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("drop page cache of %s: fadvise: %w", path, err)
	}
	return nil
}
