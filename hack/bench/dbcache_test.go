package main

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cachedPages returns how many pages of the file at path are in the page
// cache (mincore).
func cachedPages(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	vec := make([]byte, (len(b)+pageSize-1)/pageSize)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// TestDropDBPageCache evicts the databases at each of the roots' places
// and leaves other files cached.
func TestDropDBPageCache(t *testing.T) {
	root := t.TempDir()
	dbs := []string{"cache.db", "runc-overlayfs/metadata_v2.db", "runc-overlayfs/snapshots/metadata.db"}
	other := "runc-overlayfs/content/blob"
	data := make([]byte, 16*pageSize)
	for _, p := range append(dbs, other) {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if n := cachedPages(t, filepath.Join(root, dbs[1])); n != 16 {
		t.Fatalf("%d pages of a just written file cached, want 16", n)
	}
	if err := dropDBPageCache(root); err != nil {
		t.Fatal(err)
	}
	for _, p := range dbs {
		if n := cachedPages(t, filepath.Join(root, p)); n != 0 {
			t.Errorf("%s: %d pages still cached", p, n)
		}
	}
	if n := cachedPages(t, filepath.Join(root, other)); n != 16 {
		t.Errorf("%s, not a database: %d pages cached, want 16", other, n)
	}
}
