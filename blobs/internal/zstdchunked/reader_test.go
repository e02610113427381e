package zstdchunked

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"testing"
	_ "unsafe" // go:linkname to containers/storage's TOC reader

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"
	"go.podman.io/storage/pkg/chunked"
)

// readZstdChunkedManifest is containers/storage's own reader of a
// zstd:chunked layer's TOC, the one partial pulls use: it fetches the TOC
// and tar-split at the positions the annotations give, checks the TOC
// against the manifest-checksum annotation and the tar-split against the
// TOC's digest, decompresses both, parses the TOC and checks that TOC and
// tar-split describe the same entries. It is unexported; its *minimal.TOC
// result is laid out as this package's TOC.
//
//go:linkname readZstdChunkedManifest go.podman.io/storage/pkg/chunked.readZstdChunkedManifest
func readZstdChunkedManifest(tmpDir string, blobStream chunked.ImageSourceSeekable, tocDigest digest.Digest, annotations map[string]string, compressed bool) ([]byte, *TOC, *os.File, int64, error)

// blobSource serves ranges of a blob, as a registry serves range requests.
type blobSource []byte

// GetBlobAt implements chunked.ImageSourceSeekable.
func (b blobSource) GetBlobAt(chunks []chunked.ImageSourceChunk) (chan io.ReadCloser, chan error, error) {
	streams, errs := make(chan io.ReadCloser), make(chan error)
	go func() {
		defer close(streams)
		defer close(errs)
		for _, c := range chunks {
			if c.Offset+c.Length > uint64(len(b)) {
				errs <- fmt.Errorf("range %d+%d beyond the blob's %d bytes", c.Offset, c.Length, len(b))
				return
			}
			streams <- io.NopCloser(bytes.NewReader(b[c.Offset : c.Offset+c.Length]))
		}
	}()
	return streams, errs, nil
}

// readTOC reads blob's TOC and tar-split with containers/storage's reader.
func readTOC(t *testing.T, blob []byte, annotations map[string]string) (*TOC, []byte) {
	t.Helper()
	tocDigest, err := digest.Parse(annotations[ManifestChecksumKey])
	if err != nil {
		t.Fatalf("%s annotation: %v", ManifestChecksumKey, err)
	}
	_, toc, split, _, err := readZstdChunkedManifest(t.TempDir(), blobSource(blob), tocDigest, annotations, true)
	if err != nil {
		t.Fatalf("containers/storage cannot read the TOC: %v", err)
	}
	defer split.Close()
	if _, err := split.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	tarSplit, err := io.ReadAll(split)
	if err != nil {
		t.Fatal(err)
	}
	return toc, tarSplit
}

// decodeRange decompresses blob[from:to] alone, as a partial pull does
// with the frames of one file or chunk.
func decodeRange(t *testing.T, blob []byte, from, to int64) []byte {
	t.Helper()
	if from < 0 || to <= from || to > int64(len(blob)) {
		t.Fatalf("frame range %d-%d outside the blob of %d bytes", from, to, len(blob))
	}
	d, err := zstd.NewReader(bytes.NewReader(blob[from:to]))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out, err := io.ReadAll(d)
	if err != nil {
		t.Fatalf("frames %d-%d do not decompress alone: %v", from, to, err)
	}
	return out
}

// checkLayer reads blob as a zstd:chunked consumer does and compares
// everything with the tar it was made from.
func checkLayer(t *testing.T, tarball, blob []byte, annotations map[string]string, files []testFile) {
	t.Helper()
	d, _ := zstd.NewReader(bytes.NewReader(blob))
	whole, err := io.ReadAll(d)
	d.Close()
	if err != nil || !bytes.Equal(whole, tarball) {
		t.Fatalf("a plain zstd reader does not get the tar back (err %v, %d bytes for %d)", err, len(whole), len(tarball))
	}
	toc, tarSplit := readTOC(t, blob, annotations)
	byName := map[string]testFile{}
	for _, f := range files {
		byName[f.hdr.Name] = f
	}
	seen := map[string]bool{}
	for i := 0; i < len(toc.Entries); i++ {
		e := toc.Entries[i]
		f, ok := byName[e.Name]
		if !ok || e.Type == typeChunk {
			t.Fatalf("TOC entry %d (%s %q) is not a file of the tar", i, e.Type, e.Name)
		}
		seen[e.Name] = true
		if e.Linkname != f.hdr.Linkname || e.Mode != f.hdr.Mode || e.Size != f.hdr.Size || e.UID != f.hdr.Uid || e.Devminor != f.hdr.Devminor {
			t.Errorf("%s: TOC metadata %+v does not match the tar header", e.Name, e)
		}
		for k, v := range f.hdr.PAXRecords {
			if got := e.Xattrs[k[len(paxXattr):]]; got == "" || got != b64(v) {
				t.Errorf("%s: xattr %s = %q in the TOC", e.Name, k, got)
			}
		}
		if e.Type != typeReg || len(f.data) == 0 {
			// The reader gives empty regular files the empty digest.
			if e.Offset != 0 || (e.Digest != "" && e.Digest != digest.FromBytes(nil).String()) {
				t.Errorf("%s: entry without content has offset %d, digest %q", e.Name, e.Offset, e.Digest)
			}
			continue
		}
		if got := decodeRange(t, blob, e.Offset, e.EndOffset); !bytes.Equal(got, f.data) {
			t.Errorf("%s: its frames decompress to %d bytes, not its %d bytes", e.Name, len(got), len(f.data))
		}
		if e.Digest != digest.FromBytes(f.data).String() {
			t.Errorf("%s: digest %s", e.Name, e.Digest)
		}
		i += checkChunks(t, blob, toc.Entries[i:], f.data)
	}
	if len(seen) != len(files) {
		t.Errorf("TOC has %d files, the tar %d", len(seen), len(files))
	}
	checkTarSplit(t, tarSplit, tarball, files)
}

// checkChunks checks the chunks of the file whose entries start entries:
// each decompressed alone is its piece of data, with its digest; it
// returns how many chunk entries follow the file's.
func checkChunks(t *testing.T, blob []byte, entries []FileMetadata, data []byte) int {
	t.Helper()
	n := 1
	for n < len(entries) && entries[n].Type == typeChunk {
		n++
	}
	if n == 1 {
		if entries[0].ChunkSize != 0 {
			t.Errorf("%s: a single chunk is described", entries[0].Name)
		}
		return 0
	}
	var next int64
	for i, c := range entries[:n] {
		end := entries[0].EndOffset
		if i+1 < n {
			end = entries[i+1].Offset
		}
		got := decodeRange(t, blob, c.Offset, end)
		want := data[c.ChunkOffset : c.ChunkOffset+c.ChunkSize]
		if c.ChunkOffset != next || !bytes.Equal(got, want) {
			t.Errorf("%s: chunk %d at %d (expected %d) decompresses to other bytes", entries[0].Name, i, c.ChunkOffset, next)
		}
		if c.ChunkDigest != fmt.Sprintf("sha256:%x", sha256.Sum256(want)) {
			t.Errorf("%s: chunk %d digest %s", entries[0].Name, i, c.ChunkDigest)
		}
		if (c.ChunkType == chunkTypeZeros) != (len(want) >= holesThreshold && bytes.Count(want, []byte{0}) == len(want)) {
			t.Errorf("%s: chunk %d of %d bytes has type %q", entries[0].Name, i, len(want), c.ChunkType)
		}
		next += c.ChunkSize
	}
	if next != int64(len(data)) {
		t.Errorf("%s: chunks cover %d of %d bytes", entries[0].Name, next, len(data))
	}
	return n - 1
}

// checkTarSplit rebuilds the tar from the tar-split and the files'
// contents, as containers/storage does when it exports a layer pulled
// partially: it must be the original tar, byte for byte.
func checkTarSplit(t *testing.T, tarSplit, tarball []byte, files []testFile) {
	t.Helper()
	fgp := storage.NewBufferFileGetPutter()
	for _, f := range files {
		if _, _, err := fgp.Put(f.hdr.Name, bytes.NewReader(f.data)); err != nil {
			t.Fatal(err)
		}
	}
	rc := asm.NewOutputTarStream(fgp, storage.NewJSONUnpacker(bytes.NewReader(tarSplit)))
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, tarball) {
		t.Errorf("the tar-split rebuilds %d bytes (err %v), not the %d-byte tar", len(got), err, len(tarball))
	}
}
