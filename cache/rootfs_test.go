package cache

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRootFSNoEscape(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for name, target := range map[string]string{
		"abs":     secret,
		"rel":     filepath.Join("..", filepath.Base(outside), "secret"),
		"up":      "../../../../../../..",
		"dirlink": outside,
	} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := openRootFS(root, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	secretInfo, err := os.Lstat(secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"abs", "rel", "dirlink/secret", "up" + outside + "/secret"} {
		if f, err := r.openChecked(name, secretInfo); err == nil {
			f.close()
			t.Errorf("OpenRegular(%q) opened a file outside the root", name)
		}
	}
	if got, err := r.Readlink("abs"); err != nil || got != secret {
		t.Errorf("Readlink(abs) = %q, %v", got, err)
	}
	if _, err := r.Readlink("dirlink/secret"); err == nil {
		t.Error("Readlink followed a symlink out of the root")
	}
}

func TestRootFSChangedEntry(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "file")
	if err := os.WriteFile(p, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	walked, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := openRootFS(root, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := r.openChecked("file", walked)
	if err != nil {
		t.Fatal(err)
	}
	f.close()
	// Replaced by a symlink, then by another file, after the walk.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", p); err != nil {
		t.Fatal(err)
	}
	if _, err := r.openChecked("file", walked); !errors.Is(err, unix.ELOOP) {
		t.Errorf("symlink swapped in: %v, want ELOOP", err)
	}
	// Another file renamed over it (created first, so another inode).
	other := filepath.Join(root, "other")
	if err := os.WriteFile(other, []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, p); err != nil {
		t.Fatal(err)
	}
	if _, err := r.openChecked("file", walked); err == nil {
		t.Error("a different file was opened")
	}
}

func TestRootFSXattrsOfSymlink(t *testing.T) {
	root := t.TempDir()
	target := filepath.Join(root, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(target, "user.t", []byte("v"), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
		t.Fatal(err)
	}
	if err := os.Symlink("target", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	r, err := openRootFS(root, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	xs, err := r.Xattrs("link")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range xs {
		if x.Name == "user.t" {
			t.Error("Xattrs followed the symlink")
		}
	}
}

func TestDirRefUnwalkable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := NewDirRef(dir, nil, DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewDirRef(dir, nil, DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if a.ID() == b.ID() || a.ID() != a.ID() || a.Size() != 0 {
		t.Errorf("IDs of unwalkable trees: %q %q", a.ID(), b.ID())
	}
}

// TestRootFSDirectories: directories are opened beneath the root with
// openat2 and, where it is missing, one component at a time; both open
// nested directories (from the root and from the cached one, down and
// back up) and refuse a symlink in the path, even one staying inside the
// root (the walk saw a directory there, so the tree changed).
func TestRootFSDirectories(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/b/c", "a/x", "z"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := []string{"a/b/c/f", "a/b/f", "a/x/f", "z/f", "f"}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(root, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a/b", filepath.Join(root, "in")); err != nil {
		t.Fatal(err)
	}
	for _, noOpenat2 := range []bool{false, true} {
		r, err := openRootFS(root, false)
		if err != nil {
			t.Fatal(err)
		}
		r.noOpenat2 = noOpenat2
		for _, name := range append(files, "a/b/c/f", "f", "a/x/f") {
			want, err := os.Lstat(filepath.Join(root, name))
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, want.Size())
			if _, err := r.ReadSmall(name, want, buf); err != nil || string(buf) != name {
				t.Errorf("openat2 off %v: ReadSmall(%s) = %q, %v", noOpenat2, name, buf, err)
			}
		}
		inside, err := os.Lstat(filepath.Join(root, "a/b/f"))
		if err != nil {
			t.Fatal(err)
		}
		if f, err := r.openChecked("in/f", inside); err == nil {
			f.close()
			t.Errorf("openat2 off %v: opened in/f through a symlinked directory", noOpenat2)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
