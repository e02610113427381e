package transfer

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFileAtomic writes dest through a temporary file in its directory:
// write fills it (buffered), it is synced, made 0644 and renamed to dest
// only if everything succeeded, so a failed or killed copy leaves no
// half-written file under dest.
func WriteFileAtomic(dest string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	if err := os.Rename(f.Name(), dest); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	return nil
}
