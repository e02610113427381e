package reliability

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lade-build/lade/exporter/exportertest"
	"github.com/lade-build/lade/imagestore"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// hugeSize is just over the 8 GiB a ustar size field holds.
const hugeSize = 8<<30 + 1<<20

// Markers written at the start and at the end of the huge sparse file.
var hugeHead, hugeTail = []byte("head!"), []byte("tail!")

// TestHugeSparseFile exports, with the CLI and compression=zstd, a layer
// holding one sparse file of 8 GiB + 1 MiB (two 5-byte markers, holes
// elsewhere; it takes 8 KiB of a tmpfs). The layer is read back from the
// store in one streaming pass: the blob's digest verifies, the tar's only
// entry is a regular file whose size (past the 8 GiB ustar limit) is exact,
// its content is the markers at both ends and zeros in between (sparse
// files are written dense). The config's diff_id is the metadata's; the
// tar is not hashed again (4.5 s more). lade check is clean.
//
// The image is not unpacked here: both unpackers write the file dense,
// 8 GiB of disk and about 20 s each on the CI machines; TestTreeRoundTrip
// unpacks a 16 MiB sparse file with both.
func TestHugeSparseFile(t *testing.T) {
	// On tmpfs, reading a hole costs no page cache: on ext4 the first read
	// of 8 GiB of holes fills the page cache with zeros (20 s of system
	// time on the CI machines).
	dir := filepath.Join(mountTmpfs(t, "16m"), "layer")
	must(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, "huge")
	f, err := os.Create(path)
	must(t, err)
	must(t, f.Truncate(hugeSize))
	_, err = f.WriteAt(hugeHead, 0)
	must(t, err)
	_, err = f.WriteAt(hugeTail, hugeSize-int64(len(hugeTail)))
	must(t, err)
	must(t, f.Close())
	var st syscall.Stat_t
	must(t, syscall.Stat(path, &st))
	if st.Blocks*512 > 1<<20 {
		t.Fatalf("the test's file system stores the sparse file densely (%d bytes)", st.Blocks*512)
	}

	root := filepath.Join(t.TempDir(), "store")
	c := newCLI(t, root)
	md := filepath.Join(t.TempDir(), "md.json")
	start := time.Now()
	c.ok("export", "--progress", "quiet", "--metadata-file", md, "-o", "type=image,name=huge:1,compression=zstd", dir)
	t.Logf("export took %v", time.Since(start))
	start = time.Now()
	defer func() { t.Logf("check took %v", time.Since(start)) }()
	res := readMetadata(t, md)
	pr := res[0].Result.Platforms[0]
	if len(pr.Layers) != 1 || pr.Layers[0].Dropped {
		t.Fatalf("layers %+v, want one", pr.Layers)
	}

	s := openStore(t, root)
	ctx := context.Background()
	var mfst ocispec.Manifest
	var cfg ocispec.Image
	readJSONBlob(t, s, pr.Manifest, &mfst)
	readJSONBlob(t, s, mfst.Config, &cfg)
	if len(mfst.Layers) != 1 || len(cfg.RootFS.DiffIDs) != 1 {
		t.Fatalf("manifest has %d layers, config %d diff_ids; want 1", len(mfst.Layers), len(cfg.RootFS.DiffIDs))
	}
	blob, err := exportertest.Open(ctx, s.Content(), mfst.Layers[0]) // verifies the digest at EOF
	must(t, err)
	defer blob.Close()
	tr, err := exportertest.Decompress(mfst.Layers[0].MediaType, blob)
	must(t, err)
	checkHugeLayer(t, tr)
	if _, err := io.Copy(io.Discard, blob); err != nil {
		t.Fatal(err)
	}
	if cfg.RootFS.DiffIDs[0] != pr.Layers[0].DiffID {
		t.Errorf("config diff_id %s, metadata %s", cfg.RootFS.DiffIDs[0], pr.Layers[0].DiffID)
	}
	s.Close()
	c.checkClean()
}

// readJSONBlob reads and decodes a small blob of the store, verified.
func readJSONBlob(t testing.TB, s *imagestore.Store, d ocispec.Descriptor, v any) {
	t.Helper()
	rc, err := exportertest.Open(context.Background(), s.Content(), d)
	must(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	must(t, err)
	must(t, json.Unmarshal(b, v))
}

// checkHugeLayer reads a layer tar to its end: one entry, the huge file,
// markers and zeros.
func checkHugeLayer(t testing.TB, r io.Reader) {
	t.Helper()
	tr := tar.NewReader(r)
	entries := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		entries++
		if hdr.Name != "huge" || hdr.Typeflag != tar.TypeReg || hdr.Size != hugeSize {
			t.Fatalf("entry %q type %c size %d, want the regular file huge of %d bytes", hdr.Name, hdr.Typeflag, hdr.Size, int64(hugeSize))
		}
		t.Logf("huge: tar format %v, PAX records %v", hdr.Format, hdr.PAXRecords)
		if err := checkHugeContent(tr); err != nil {
			t.Fatal(err)
		}
	}
	if entries != 1 {
		t.Fatalf("%d entries in the layer, want 1", entries)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
}

// checkHugeContent checks the huge file's content: markers at both ends,
// zeros between.
func checkHugeContent(r io.Reader) error {
	buf := make([]byte, 1<<20)
	zeros := make([]byte, 1<<20)
	var off int64
	for {
		n, err := io.ReadFull(r, buf)
		chunk := buf[:n]
		for i := 0; i < n; {
			at := off + int64(i)
			switch {
			case at < int64(len(hugeHead)):
				if chunk[i] != hugeHead[at] {
					return fmt.Errorf("byte %d is %#x, want %#x", at, chunk[i], hugeHead[at])
				}
				i++
			case at >= hugeSize-int64(len(hugeTail)):
				if want := hugeTail[at-(hugeSize-int64(len(hugeTail)))]; chunk[i] != want {
					return fmt.Errorf("byte %d is %#x, want %#x", at, chunk[i], want)
				}
				i++
			default:
				end := min(n, int(hugeSize-int64(len(hugeTail))-off))
				if !bytes.Equal(chunk[i:end], zeros[:end-i]) {
					return fmt.Errorf("non-zero bytes in the hole between offsets %d and %d", at, off+int64(end))
				}
				i = end
			}
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != hugeSize {
		return fmt.Errorf("read %d bytes, want %d", off, int64(hugeSize))
	}
	return nil
}
