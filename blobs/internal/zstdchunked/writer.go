package zstdchunked

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/tar/storage"
)

// Writer turns the tar stream written to it into a zstd:chunked blob on
// the underlying writer. It parses the tar headers from the stream
// itself, so it takes the place of a plain compressor. It is not safe for
// concurrent use.
type Writer struct {
	fw      *frameWriter
	payload *payload
	tar     tarScanner

	entries []FileMetadata
	cur     FileMetadata // the regular file whose content is being written
	left    int64        // content bytes of cur still to come
	inFile  bool

	split      *storage.Entry // tar-split file entry of cur
	crc        hash64
	splitZ     *zstd.Encoder
	splitBuf   bytes.Buffer
	splitCount int64
	packer     *splitPacker

	annotations map[string]string
	err         error
	closed      bool
}

type hash64 interface {
	io.Writer
	Sum(b []byte) []byte
	Reset()
}

// NewWriter returns a Writer writing into w at the zstd level, with
// klauspost's encoder, or with libzstd when native is set (which fails in
// a binary built without it: see libzstd.Available). The two encoders'
// frames differ; the TOC but for frame offsets, the tar-split and the
// tar a zstd reader gets back do not.
func NewWriter(w io.Writer, level int, native bool) (*Writer, error) {
	fw, err := newFrameWriter(w, level, native)
	if err != nil {
		return nil, err
	}
	zw := &Writer{fw: fw, payload: newPayload(fw), crc: crc64.New(storage.CRCTable)}
	zw.splitZ, err = zstd.NewWriter(&zw.splitBuf,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	counted := writerFunc(func(p []byte) (int, error) {
		zw.splitCount += int64(len(p))
		return zw.splitZ.Write(p)
	})
	zw.packer = newSplitPacker(counted)
	return zw, nil
}

// Write implements io.Writer.
func (z *Writer) Write(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	if z.closed {
		return 0, errors.New("zstd:chunked: write after close")
	}
	n := len(p)
	for len(p) > 0 && z.err == nil {
		if z.inFile {
			k := int(min(z.left, int64(len(p))))
			z.payload.write(p[:k])
			z.crc.Write(p[:k])
			z.left -= int64(k)
			p = p[k:]
			if z.left == 0 {
				z.endFile()
			}
			continue
		}
		var raw []byte
		var hdr *tar.Header
		p, raw, hdr, z.err = z.tar.feed(p)
		if hdr != nil && z.err == nil {
			z.startFile(raw, hdr)
		}
	}
	if z.err == nil {
		z.err = z.fw.err
	}
	if z.err != nil {
		return 0, z.err
	}
	return n, nil
}

// startFile records an entry whose headers (and the padding before them)
// are raw.
func (z *Writer) startFile(raw []byte, hdr *tar.Header) {
	z.fw.write(raw)
	if z.err = z.addSplit(storage.Entry{Type: storage.SegmentType, Payload: raw}); z.err != nil {
		return
	}
	meta, err := fileMetadata(hdr)
	if err != nil {
		z.err = err
		return
	}
	z.split = &storage.Entry{Type: storage.FileType, Size: hdr.Size}
	z.split.SetName(hdr.Name)
	z.cur, z.left = meta, contentSize(hdr)
	z.payload.reset()
	z.crc.Reset()
	z.tar.expectPadding(z.left)
	z.inFile = true
	if z.left == 0 {
		z.endFile()
	}
}

// endFile ends the content of the current entry.
func (z *Writer) endFile() {
	z.inFile = false
	z.entries = append(z.entries, z.payload.finish(z.cur)...)
	if z.split.Size > 0 {
		z.split.Payload = z.crc.Sum(nil)
	}
	z.err = z.addSplit(*z.split)
}

func (z *Writer) addSplit(e storage.Entry) error {
	if err := z.packer.add(e); err != nil {
		if errors.Is(err, storage.ErrDuplicatePath) {
			return fmt.Errorf("zstd:chunked: the layer tar has two entries named %q, which its tar-split cannot describe: use compression=zstd for this layer", e.GetName())
		}
		return fmt.Errorf("zstd:chunked tar-split: %w", err)
	}
	return nil
}

// Close writes the tail of the tar, the TOC, the tar-split and the
// footer, and frees the encoder, also after an error. It does not close
// the underlying writer.
func (z *Writer) Close() error {
	if !z.closed {
		defer z.fw.codec.close()
	}
	if z.closed || z.err != nil {
		z.closed = true
		return z.err
	}
	z.closed = true
	if z.inFile {
		z.err = fmt.Errorf("zstd:chunked: tar stream ends inside the content of %q", z.cur.Name)
		return z.err
	}
	tail, err := z.tar.tail()
	if err != nil {
		z.err = err
		return err
	}
	z.fw.write(tail)
	if len(tail) > 0 {
		if z.err = z.addSplit(storage.Entry{Type: storage.SegmentType, Payload: tail}); z.err != nil {
			return z.err
		}
	}
	z.fw.end()
	if z.fw.err == nil {
		z.fw.err = z.splitZ.Close()
	}
	if z.err = z.fw.err; z.err != nil {
		return z.err
	}
	z.err = z.writeTOC()
	return z.err
}

// writeTOC appends the TOC and tar-split skippable frames and the footer,
// and sets the annotations.
func (z *Writer) writeTOC() error {
	splitData := z.splitBuf.Bytes()
	toc := TOC{Version: 1, Entries: z.entries, TarSplitDigest: digest.FromBytes(splitData)}
	if toc.Entries == nil {
		toc.Entries = []FileMetadata{}
	}
	manifest, err := json.Marshal(toc)
	if err != nil {
		return fmt.Errorf("zstd:chunked TOC: %w", err)
	}
	compressed, err := z.fw.compress(manifest)
	if err != nil {
		return fmt.Errorf("zstd:chunked TOC: %w", err)
	}
	tocOffset := z.fw.n + 8
	splitOffset := tocOffset + int64(len(compressed)) + 8
	f := footer{
		tocOffset: uint64(tocOffset), tocLength: uint64(len(compressed)), tocUncompressed: uint64(len(manifest)),
		tarSplitOffset: uint64(splitOffset), tarSplitLength: uint64(len(splitData)), tarSplitUncompr: uint64(z.splitCount),
	}
	for _, b := range [][]byte{compressed, splitData, f.bytes()} {
		if _, err := z.fw.out.Write(skippableFrame(b)); err != nil {
			return err
		}
	}
	z.annotations = map[string]string{
		ManifestChecksumKey: digest.FromBytes(compressed).String(),
		ManifestInfoKey:     fmt.Sprintf("%d:%d:%d:%d", tocOffset, len(compressed), len(manifest), manifestTypeCRFS),
		TarSplitInfoKey:     fmt.Sprintf("%d:%d:%d", splitOffset, len(splitData), z.splitCount),
	}
	return nil
}

// Annotations returns the layer annotations; nil before a successful Close.
func (z *Writer) Annotations() map[string]string { return z.annotations }

// tarTypes maps tar type flags onto TOC entry types.
var tarTypes = map[byte]string{
	tar.TypeReg: typeReg, tar.TypeLink: typeLink, tar.TypeChar: typeChar, tar.TypeBlock: typeBlock,
	tar.TypeDir: typeDir, tar.TypeFifo: typeFifo, tar.TypeSymlink: typeSymlink,
}

// paxXattr is the PAX record prefix of extended attributes.
const paxXattr = "SCHILY.xattr."

// fileMetadata is the TOC entry of hdr, before its content is known.
// Times are in UTC so that the TOC does not depend on the time zone.
func fileMetadata(hdr *tar.Header) (FileMetadata, error) {
	typ, ok := tarTypes[hdr.Typeflag]
	if !ok {
		return FileMetadata{}, fmt.Errorf("zstd:chunked: entry %q has tar type %q, which zstd:chunked cannot describe: use compression=zstd for this layer", hdr.Name, hdr.Typeflag)
	}
	xattrs := map[string]string{}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, paxXattr); ok {
			xattrs[name] = base64.StdEncoding.EncodeToString([]byte(v))
		}
	}
	utc := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		t = t.UTC()
		return &t
	}
	return FileMetadata{
		Type: typ, Name: hdr.Name, Linkname: hdr.Linkname, Mode: hdr.Mode, Size: hdr.Size,
		UID: hdr.Uid, GID: hdr.Gid, ModTime: utc(hdr.ModTime), AccessTime: utc(hdr.AccessTime),
		ChangeTime: utc(hdr.ChangeTime), Devmajor: hdr.Devmajor, Devminor: hdr.Devminor, Xattrs: xattrs,
	}, nil
}

// contentSize is the number of content bytes following hdr in the tar:
// none for types that have no content, whatever their size field says.
func contentSize(hdr *tar.Header) int64 {
	switch hdr.Typeflag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		return 0
	}
	return hdr.Size
}
