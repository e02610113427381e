package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layout is read access to the files of an OCI layout (a directory or a tar
// file). As a content.Provider it serves blobs/<alg>/<encoded>; readers it
// returns are safe for concurrent use and must be closed by the caller.
type Layout interface {
	content.Provider
	// ReadFile returns the whole regular file at the slash-separated name
	// relative to the layout's root, at most MaxJSONSize bytes. A missing
	// file gives an error wrapping fs.ErrNotExist.
	ReadFile(name string) ([]byte, error)
}

// TarFile is a tar archive on disk indexed once so its regular files can be
// read in any order, without extracting anything.
//
// Safety: an entry whose name is absolute or has a ".." element makes
// OpenTar fail. Only regular files are served. Symbolic and hard links are
// never followed on a file system; a link whose target, resolved lexically
// inside the archive, names a regular file of the archive is an alias of that
// file (legacy `docker save` links repeated layer.tar files this way); any
// other link is ignored.
type TarFile struct {
	f       *os.File
	entries map[string]tarEntry
	links   map[string]string
}

type tarEntry struct{ off, size int64 }

// OpenTar opens and indexes the tar file at p. The caller closes it.
func OpenTar(p string) (*TarFile, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	t := &TarFile{f: f, entries: map[string]tarEntry{}, links: map[string]string{}}
	if err := t.index(); err != nil {
		f.Close()
		return nil, fmt.Errorf("read archive %s: %w", p, err)
	}
	return t, nil
}

// index reads every header once, recording where each regular file's
// content starts and which links alias which names.
func (t *TarFile) index() error {
	tr := tar.NewReader(t.f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			off, err := t.f.Seek(0, io.SeekCurrent)
			if err != nil {
				return err
			}
			t.entries[name] = tarEntry{off: off, size: hdr.Size}
			delete(t.links, name)
		case tar.TypeSymlink, tar.TypeLink:
			target := hdr.Linkname
			if hdr.Typeflag == tar.TypeSymlink && !path.IsAbs(target) {
				target = path.Join(path.Dir(name), target)
			}
			if target, err = cleanName(target); err == nil {
				t.links[name] = target
				delete(t.entries, name)
			}
		}
	}
}

// cleanName checks an archive entry name (or link target) and returns it
// cleaned: absolute names and ".." elements are errors.
func cleanName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("entry %q: absolute or empty names are not allowed", name)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", fmt.Errorf("entry %q: \"..\" elements are not allowed", name)
		}
	}
	return path.Clean(name), nil
}

// Open returns a reader over the regular file name (after one link alias).
func (t *TarFile) Open(name string) (*io.SectionReader, error) {
	name = path.Clean(name)
	e, ok := t.entries[name]
	if !ok {
		if target, isLink := t.links[name]; isLink {
			e, ok = t.entries[target]
		}
	}
	if !ok {
		return nil, fmt.Errorf("%s: no regular file of that name in the archive: %w", name, fs.ErrNotExist)
	}
	return io.NewSectionReader(t.f, e.off, e.size), nil
}

// Has reports whether name is a regular file (or an alias of one).
func (t *TarFile) Has(name string) bool {
	_, err := t.Open(name)
	return err == nil
}

// ReadFile implements Layout.
func (t *TarFile) ReadFile(name string) ([]byte, error) {
	r, err := t.Open(name)
	if err != nil {
		return nil, err
	}
	if r.Size() > MaxJSONSize {
		return nil, fmt.Errorf("%s: %d bytes is more than the %d allowed", name, r.Size(), MaxJSONSize)
	}
	return io.ReadAll(r)
}

// ReaderAt implements content.Provider over blobs/<alg>/<encoded>.
func (t *TarFile) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("descriptor %q: %w", desc.Digest, err)
	}
	r, err := t.Open(BlobPath(desc.Digest))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	return sectionReaderAt{r}, nil
}

// Close closes the archive file.
func (t *TarFile) Close() error { return t.f.Close() }

// sectionReaderAt adapts a SectionReader to content.ReaderAt.
type sectionReaderAt struct{ *io.SectionReader }

// Close does nothing: the TarFile owns the file.
func (sectionReaderAt) Close() error { return nil }

// Dir is a layout directory opened through an os.Root, so no name (nor any
// symlink inside it) can reach outside the directory.
type Dir struct{ root *os.Root }

// OpenDir opens the layout directory dir. The caller closes it.
func OpenDir(dir string) (*Dir, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open layout: %w", err)
	}
	return &Dir{root: root}, nil
}

// open opens a regular file of the directory.
func (d *Dir) open(name string) (*os.File, int64, error) {
	f, err := d.root.Open(name)
	if err != nil {
		return nil, 0, fmt.Errorf("open %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file: %w", fs.ErrNotExist)
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("open %s: %w", name, err)
	}
	return f, fi.Size(), nil
}

// ReadFile implements Layout.
func (d *Dir) ReadFile(name string) ([]byte, error) {
	f, size, err := d.open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > MaxJSONSize {
		return nil, fmt.Errorf("%s: %d bytes is more than the %d allowed", name, size, MaxJSONSize)
	}
	return io.ReadAll(f)
}

// ReaderAt implements content.Provider over blobs/<alg>/<encoded>.
func (d *Dir) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("descriptor %q: %w", desc.Digest, err)
	}
	f, size, err := d.open(BlobPath(desc.Digest))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w: %w", desc.Digest, errdefs.ErrNotFound, err)
	}
	return fileReaderAt{File: f, size: size}, nil
}

// Close closes the directory.
func (d *Dir) Close() error { return d.root.Close() }

// fileReaderAt adapts an open file to content.ReaderAt.
type fileReaderAt struct {
	*os.File
	size int64
}

// Size returns the file's size when it was opened.
func (f fileReaderAt) Size() int64 { return f.size }
