package blobs

import (
	"archive/tar"
	"bytes"
	"testing"

	"github.com/lade-build/lade/blobs/internal/libzstd"
)

// TestZstdChunkedCodec: zstd:chunked frames come from libzstd by default
// where the native encoders are built in and from klauspost's encoder
// otherwise or with LADE_ZSTD=go or LADE_CODECS=go; the blob cache key
// names the encoder whenever its frames are libzstd's, and the writers of
// the two keys write different bytes.
func TestZstdChunkedCodec(t *testing.T) {
	chunked := Compression{Type: ZstdChunked}
	codecOf := func(zstdEnv, codecsEnv string) string {
		t.Helper()
		t.Setenv(ZstdCodecEnv, zstdEnv)
		t.Setenv(CodecsEnv, codecsEnv)
		codec, err := chunked.codec()
		if err != nil {
			t.Fatalf("%s=%q %s=%q: %v", ZstdCodecEnv, zstdEnv, CodecsEnv, codecsEnv, err)
		}
		return codec
	}
	if got := codecOf("go", ""); got != "" {
		t.Errorf("LADE_ZSTD=go: codec %q, want klauspost's (\"\")", got)
	}
	if got := codecOf("", "go"); got != "" {
		t.Errorf("LADE_CODECS=go: codec %q, want klauspost's (\"\")", got)
	}
	want := ""
	if NativeCodecs() {
		want = libzstd.Version()
	}
	if got := codecOf("", ""); got != want {
		t.Errorf("default codec %q, want %q", got, want)
	}
	if !libzstd.Available {
		return
	}
	if got := codecOf("libzstd", ""); got != libzstd.Version() {
		t.Errorf("LADE_ZSTD=libzstd: codec %q, want %q", got, libzstd.Version())
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	data := bytes.Repeat([]byte("zstd:chunked frames of libzstd and klauspost\n"), 2000)
	for _, name := range []string{"a", "b"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	tarball := tb.Bytes()
	blobOf := func(zstdEnv string) []byte {
		t.Helper()
		t.Setenv(ZstdCodecEnv, zstdEnv)
		var out bytes.Buffer
		w, err := chunked.NewWriter(&out, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(tarball); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	if bytes.Equal(blobOf("go"), blobOf("libzstd")) {
		t.Error("klauspost's and libzstd's zstd:chunked blobs are the same: the codec choice is not used")
	}
}
