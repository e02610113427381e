package cache

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// filterTar copies the tar stream r to w, validating every entry name (see
// validateEntry). With epoch nil the bytes are copied unchanged, including
// the padding after the end-of-archive marker. With epoch set, the archive
// is re-written through archive/tar in PAX format with every timestamp
// newer than epoch set to epoch, entries otherwise unchanged, and r is read
// to its end. It stops with ctx's error when ctx is done.
func filterTar(ctx context.Context, w io.Writer, r io.Reader, epoch *time.Time) error {
	if epoch == nil {
		return validateTar(ctx, w, r)
	}
	return clampTar(ctx, w, r, *epoch)
}

// validateTar copies r to w unchanged while parsing it.
func validateTar(ctx context.Context, w io.Writer, r io.Reader) error {
	src := ctxReader{ctx: ctx, r: r}
	// The tar reader reads exactly the archive's blocks, so the tee passes
	// every byte on; the rest (padding) is copied after the last entry.
	tr := tar.NewReader(io.TeeReader(src, w))
	for {
		_, err := nextEntry(tr)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if _, err := copyBuffered(ctx, w, src); err != nil {
		return fmt.Errorf("read tar: %w", err)
	}
	return nil
}

// clampTar re-writes r to w with timestamps clamped to epoch.
func clampTar(ctx context.Context, w io.Writer, r io.Reader, epoch time.Time) error {
	src := ctxReader{ctx: ctx, r: r}
	tr := tar.NewReader(src)
	tw := tar.NewWriter(w)
	for {
		hdr, err := nextEntry(tr)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		clampHeader(hdr, epoch)
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write tar header %s: %w", hdr.Name, err)
		}
		if _, err := copyBuffered(ctx, tw, tr); err != nil {
			return fmt.Errorf("copy tar entry %s: %w", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("close tar writer: %w", err)
	}
	// Read the rest so digests of the input are verified at its EOF.
	if _, err := copyBuffered(ctx, io.Discard, src); err != nil {
		return fmt.Errorf("read tar: %w", err)
	}
	return nil
}

// nextEntry reads and validates the next header; io.EOF at the end.
func nextEntry(tr *tar.Reader) (*tar.Header, error) {
	hdr, err := tr.Next()
	if errors.Is(err, tar.ErrInsecurePath) {
		// GODEBUG=tarinsecurepath=0: say why when validateEntry knows.
		if verr := validateEntry(hdr); verr != nil {
			return nil, verr
		}
	}
	if errors.Is(err, io.EOF) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("read tar: %w", err)
	}
	if err := validateEntry(hdr); err != nil {
		return nil, err
	}
	return hdr, nil
}

// clampHeader sets every timestamp of hdr newer than epoch to epoch and
// prepares hdr to be written in PAX format.
func clampHeader(hdr *tar.Header, epoch time.Time) {
	clamp := func(t time.Time) time.Time {
		if t.After(epoch) {
			return epoch
		}
		return t
	}
	hdr.ModTime = clamp(hdr.ModTime)
	hdr.AccessTime = clamp(hdr.AccessTime)
	hdr.ChangeTime = clamp(hdr.ChangeTime)
	for k := range hdr.PAXRecords {
		// The reader keeps the records it merged into the header; stale
		// time records would override the clamped fields, and sparse
		// records no longer describe the (dense) data written.
		if k == "mtime" || k == "atime" || k == "ctime" || strings.HasPrefix(k, "GNU.sparse.") {
			delete(hdr.PAXRecords, k)
		}
	}
	if hdr.Typeflag == tar.TypeGNUSparse {
		hdr.Typeflag = tar.TypeReg
	}
	hdr.Format = tar.FormatPAX
}

// validateEntry rejects entries that would land outside the root they are
// applied to: empty, absolute or ".."-containing names and hard link
// targets. Symlink targets are not checked: they are resolved at use, and
// appliers keep them inside the root.
func validateEntry(hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // metadata for the archive, never extracted
	}
	if err := validateName(hdr.Name); err != nil {
		return fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	if hdr.Typeflag == tar.TypeLink {
		if err := validateName(hdr.Linkname); err != nil {
			return fmt.Errorf("entry %q: hard link target %q: %w", hdr.Name, hdr.Linkname, err)
		}
	}
	return nil
}

// validateName checks one name of a tar entry.
func validateName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if strings.HasPrefix(name, "/") {
		return errors.New("absolute path not allowed in a layer")
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return errors.New(`".." path element not allowed in a layer`)
		}
	}
	return nil
}
