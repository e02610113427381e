package soci

import (
	"slices"
	"time"

	fbs "github.com/awslabs/soci-snapshotter/ztoc/fbs/ztoc"
	flatbuffers "github.com/google/flatbuffers/go"
	digest "github.com/opencontainers/go-digest"
)

// Version is the zTOC version lade writes, soci-snapshotter's current one.
const Version = "0.9"

// ZTOC is one layer's table of contents: its files and the checkpoints to
// inflate it from span boundaries.
type ZTOC struct {
	Files []File
	// SpanSize is the span size asked for; spans are at least that long
	// (except the last), ending where a gzip block starts.
	SpanSize int64
	// Spans is the number of spans (checkpoints).
	Spans int
	// CompressedSize and UncompressedSize are the blob's and the tar's
	// (through its end-of-archive blocks) sizes.
	CompressedSize   int64
	UncompressedSize int64
	// SpanDigests are the sha256 of each span's compressed bytes.
	SpanDigests []digest.Digest
	// Checkpoints is the gzip zinfo blob (see Builder.zinfo).
	Checkpoints []byte
}

// Marshal serializes z with soci-snapshotter's flatbuffers schema (its
// ztoc/fbs), fields in the order its marshaler writes them, so the bytes
// depend on z only.
func (z *ZTOC) Marshal() []byte {
	b := flatbuffers.NewBuilder(1024 + len(z.Checkpoints) + 256*len(z.Files))
	version := b.CreateString(Version)
	tool := b.CreateString(BuildTool)
	toc := z.marshalTOC(b)
	checkpoints := b.CreateByteVector(z.Checkpoints)
	spans := make([]flatbuffers.UOffsetT, len(z.SpanDigests))
	for i, d := range z.SpanDigests {
		spans[i] = b.CreateString(d.String())
	}
	spanVec := vector(b, fbs.CompressionInfoStartSpanDigestsVector, spans)
	fbs.CompressionInfoStart(b)
	fbs.CompressionInfoAddMaxSpanId(b, int32(z.Spans-1))
	fbs.CompressionInfoAddSpanDigests(b, spanVec)
	fbs.CompressionInfoAddCheckpoints(b, checkpoints)
	fbs.CompressionInfoAddCompressionAlgorithm(b, fbs.CompressionAlgorithmGzip)
	info := fbs.CompressionInfoEnd(b)
	fbs.ZtocStart(b)
	fbs.ZtocAddVersion(b, version)
	fbs.ZtocAddBuildToolIdentifier(b, tool)
	fbs.ZtocAddToc(b, toc)
	fbs.ZtocAddCompressedArchiveSize(b, z.CompressedSize)
	fbs.ZtocAddUncompressedArchiveSize(b, z.UncompressedSize)
	fbs.ZtocAddCompressionInfo(b, info)
	b.Finish(fbs.ZtocEnd(b))
	return b.FinishedBytes()
}

func (z *ZTOC) marshalTOC(b *flatbuffers.Builder) flatbuffers.UOffsetT {
	files := make([]flatbuffers.UOffsetT, len(z.Files))
	for i := len(z.Files) - 1; i >= 0; i-- {
		files[i] = marshalFile(b, &z.Files[i])
	}
	vec := vector(b, fbs.TOCStartMetadataVector, files)
	fbs.TOCStart(b)
	fbs.TOCAddMetadata(b, vec)
	return fbs.TOCEnd(b)
}

func marshalFile(b *flatbuffers.Builder, f *File) flatbuffers.UOffsetT {
	name := b.CreateString(f.Name)
	typ := b.CreateString(f.Type)
	link := b.CreateString(f.Linkname)
	uname := b.CreateString(f.Uname)
	gname := b.CreateString(f.Gname)
	modTime := b.CreateString(f.ModTime.Format(time.RFC3339Nano))
	keys := make([]string, 0, len(f.PAX))
	for k := range f.PAX {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	xattrs := make([]flatbuffers.UOffsetT, len(keys))
	for i, k := range keys {
		key, value := b.CreateString(k), b.CreateString(f.PAX[k])
		fbs.XattrStart(b)
		fbs.XattrAddKey(b, key)
		fbs.XattrAddValue(b, value)
		xattrs[i] = fbs.XattrEnd(b)
	}
	xvec := vector(b, fbs.FileMetadataStartXattrsVector, xattrs)
	fbs.FileMetadataStart(b)
	fbs.FileMetadataAddName(b, name)
	fbs.FileMetadataAddType(b, typ)
	fbs.FileMetadataAddUncompressedOffset(b, f.Offset)
	fbs.FileMetadataAddUncompressedSize(b, f.Size)
	fbs.FileMetadataAddLinkname(b, link)
	fbs.FileMetadataAddMode(b, f.Mode)
	fbs.FileMetadataAddUid(b, uint32(f.UID))
	fbs.FileMetadataAddGid(b, uint32(f.GID))
	fbs.FileMetadataAddUname(b, uname)
	fbs.FileMetadataAddGname(b, gname)
	fbs.FileMetadataAddModTime(b, modTime)
	fbs.FileMetadataAddDevmajor(b, f.Devmajor)
	fbs.FileMetadataAddDevminor(b, f.Devminor)
	fbs.FileMetadataAddXattrs(b, xvec)
	return fbs.FileMetadataEnd(b)
}

// vector writes a vector of offsets started by start.
func vector(b *flatbuffers.Builder, start func(*flatbuffers.Builder, int) flatbuffers.UOffsetT, offs []flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	start(b, len(offs))
	for i := len(offs) - 1; i >= 0; i-- {
		b.PrependUOffsetT(offs[i])
	}
	return b.EndVector(len(offs))
}

// Spans reads the span count of a serialized zTOC, as lade inspect shows
// it; ok is false when b is not a zTOC.
func Spans(b []byte) (n int, ok bool) {
	defer func() {
		if recover() != nil {
			n, ok = 0, false
		}
	}()
	z := fbs.GetRootAsZtoc(b, 0)
	info := z.CompressionInfo(nil)
	if info == nil {
		return 0, false
	}
	return int(info.MaxSpanId()) + 1, true
}
