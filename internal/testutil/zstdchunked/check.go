package zstdchunked

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"
)

// holesThreshold is the shortest zero run containers/storage's compressor
// makes a zeros chunk of.
const holesThreshold = 1 << 10

// entry is one tar entry of the layer.
type entry struct {
	hdr  *tar.Header
	data []byte
}

// Check reads the zstd:chunked layer blob as containers/storage does and
// compares it with the tar a plain zstd reader gets from it: the TOC has
// every entry with the tar header's metadata, each regular file's frames
// and each of its chunks decompress alone to its bytes with their
// digests, zeros chunks are zeros, and the tar-split rebuilds the tar byte
// for byte. It returns the TOC and the tar.
func Check(blob []byte, annotations map[string]string) (*TOC, []byte, error) {
	d, err := zstd.NewReader(bytes.NewReader(blob))
	if err != nil {
		return nil, nil, err
	}
	tarball, err := io.ReadAll(d)
	d.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("a plain zstd reader cannot read the blob: %w", err)
	}
	entries, err := readTar(tarball)
	if err != nil {
		return nil, nil, err
	}
	toc, tarSplit, err := ReadTOC(blob, annotations)
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	seen := map[string]bool{}
	for i := 0; i < len(toc.Entries); i++ {
		e := toc.Entries[i]
		f, ok := entries[e.Name]
		if !ok || e.Type == "chunk" {
			return nil, nil, fmt.Errorf("TOC entry %d (%s %q) is not an entry of the tar", i, e.Type, e.Name)
		}
		seen[e.Name] = true
		errs = append(errs, checkEntry(blob, toc.Entries[i:], f))
		for i+1 < len(toc.Entries) && toc.Entries[i+1].Type == "chunk" {
			i++
		}
	}
	if len(seen) != len(entries) {
		errs = append(errs, fmt.Errorf("TOC has %d entries, the tar %d", len(seen), len(entries)))
	}
	errs = append(errs, checkTarSplit(tarSplit, tarball, entries))
	return toc, tarball, errors.Join(errs...)
}

// readTar returns the entries of tarball by name.
func readTar(tarball []byte) (map[string]entry, error) {
	out := map[string]entry{}
	tr := tar.NewReader(bytes.NewReader(tarball))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("the blob's tar: %w", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		out[h.Name] = entry{h, data}
	}
}

// checkEntry checks the TOC entries of one tar entry (its own and its
// chunks') against it.
func checkEntry(blob []byte, es []FileMetadata, f entry) error {
	e := es[0]
	if e.Linkname != f.hdr.Linkname || e.Mode != f.hdr.Mode || e.Size != f.hdr.Size || e.UID != f.hdr.Uid || e.GID != f.hdr.Gid ||
		e.Devmajor != f.hdr.Devmajor || e.Devminor != f.hdr.Devminor {
		return fmt.Errorf("%s: TOC metadata %+v does not match the tar header", e.Name, e)
	}
	for k, v := range f.hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && e.Xattrs[name] != base64.StdEncoding.EncodeToString([]byte(v)) {
			return fmt.Errorf("%s: xattr %s is %q in the TOC", e.Name, name, e.Xattrs[name])
		}
	}
	if e.Type != "reg" || len(f.data) == 0 {
		// The reader gives empty regular files the empty digest.
		if e.Offset != 0 || (e.Digest != "" && e.Digest != digest.FromBytes(nil).String()) {
			return fmt.Errorf("%s: entry without content has offset %d, digest %q", e.Name, e.Offset, e.Digest)
		}
		return nil
	}
	got, err := decodeRange(blob, e.Offset, e.EndOffset)
	if err != nil || !bytes.Equal(got, f.data) || e.Digest != digest.FromBytes(f.data).String() {
		return fmt.Errorf("%s: its frames %d-%d decompress to %d bytes (%v), not its %d bytes, or its digest %s is wrong", e.Name, e.Offset, e.EndOffset, len(got), err, len(f.data), e.Digest)
	}
	return checkChunks(blob, es, f.data)
}

// checkChunks checks that each chunk of a file decompresses alone to its
// piece of the file, with its digest and type.
func checkChunks(blob []byte, es []FileMetadata, data []byte) error {
	n := 1
	for n < len(es) && es[n].Type == "chunk" {
		n++
	}
	if n == 1 {
		if es[0].ChunkSize != 0 {
			return fmt.Errorf("%s: a single chunk is described", es[0].Name)
		}
		return nil
	}
	var next int64
	for i, c := range es[:n] {
		end := es[0].EndOffset
		if i+1 < n {
			end = es[i+1].Offset
		}
		if c.ChunkOffset != next || c.ChunkOffset+c.ChunkSize > int64(len(data)) {
			return fmt.Errorf("%s: chunk %d at %d+%d, expected at %d", es[0].Name, i, c.ChunkOffset, c.ChunkSize, next)
		}
		want := data[c.ChunkOffset : c.ChunkOffset+c.ChunkSize]
		got, err := decodeRange(blob, c.Offset, end)
		if err != nil || !bytes.Equal(got, want) || c.ChunkDigest != fmt.Sprintf("sha256:%x", sha256.Sum256(want)) {
			return fmt.Errorf("%s: chunk %d (frames %d-%d) decompresses to other bytes (%v) or has digest %s", es[0].Name, i, c.Offset, end, err, c.ChunkDigest)
		}
		zeros := len(want) >= holesThreshold && bytes.Count(want, []byte{0}) == len(want)
		if (c.ChunkType == "zeros") != zeros {
			return fmt.Errorf("%s: chunk %d of %d bytes has type %q", es[0].Name, i, len(want), c.ChunkType)
		}
		next += c.ChunkSize
	}
	if next != int64(len(data)) {
		return fmt.Errorf("%s: chunks cover %d of %d bytes", es[0].Name, next, len(data))
	}
	return nil
}

// decodeRange decompresses blob[from:to] alone, as a partial pull does
// with the frames of one file or chunk.
func decodeRange(blob []byte, from, to int64) ([]byte, error) {
	if from <= 0 || to <= from || to > int64(len(blob)) {
		return nil, fmt.Errorf("frame range %d-%d outside the blob of %d bytes", from, to, len(blob))
	}
	d, err := zstd.NewReader(bytes.NewReader(blob[from:to]))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return io.ReadAll(d)
}

// checkTarSplit rebuilds the tar from the tar-split and the files'
// contents, as containers/storage does when it exports a layer pulled
// partially: it must be the original tar, byte for byte.
func checkTarSplit(tarSplit, tarball []byte, entries map[string]entry) error {
	fgp := storage.NewBufferFileGetPutter()
	for name, f := range entries {
		if _, _, err := fgp.Put(name, bytes.NewReader(f.data)); err != nil {
			return err
		}
	}
	rc := asm.NewOutputTarStream(fgp, storage.NewJSONUnpacker(bytes.NewReader(tarSplit)))
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, tarball) {
		return fmt.Errorf("the tar-split rebuilds %d bytes (%v), not the %d-byte tar", len(got), err, len(tarball))
	}
	return nil
}
