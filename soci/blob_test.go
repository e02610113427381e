package soci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"math/rand"
	"testing"
)

// smallLayer is a tar of text and random files, gzipped by compress/gzip
// in two members.
func smallLayer(t *testing.T) (tarball, blob []byte) {
	t.Helper()
	rng := rand.New(rand.NewSource(3))
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for i, data := range [][]byte{bytes.Repeat([]byte("some text\n"), 30000), make([]byte, 200<<10)} {
		rng.Read(data[:len(data)/2])
		tw.WriteHeader(&tar.Header{Name: string(rune('a' + i)), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	var zb bytes.Buffer
	half := tb.Len() / 2
	for _, part := range [][]byte{tb.Bytes()[:half], tb.Bytes()[half:]} {
		zw, _ := gzip.NewWriterLevel(&zb, 6)
		zw.Write(part)
		zw.Close()
	}
	return tb.Bytes(), zb.Bytes()
}

// TestFromGzipCorrupt: FromGzip fails where compress/gzip's reader fails
// (bad CRC, size, header, truncation, trailing garbage) and builds a zTOC
// where it reads the tar.
func TestFromGzipCorrupt(t *testing.T) {
	tarball, blob := smallLayer(t)
	z, err := FromGzip(bytes.NewReader(blob), 64<<10, 0)
	if err != nil || z.UncompressedSize != int64(len(tarball)) || z.Spans < 4 {
		t.Fatalf("valid blob: %v", err)
	}
	rng := rand.New(rand.NewSource(4))
	cases := [][]byte{append(append([]byte(nil), blob...), 0, 0, 0), append(append([]byte(nil), blob...), 0x1f, 0x8b)}
	for i := 0; i < 200; i++ {
		bad := append([]byte(nil), blob...)
		switch i % 4 {
		case 0:
			bad = bad[:rng.Intn(len(bad))]
		case 1:
			bad[rng.Intn(len(bad))] ^= 1 << rng.Intn(8)
		case 2:
			bad[rng.Intn(16)] ^= 1 << rng.Intn(8) // header
		default:
			bad[len(bad)-1-rng.Intn(8)] ^= 1 << rng.Intn(8) // trailer
		}
		cases = append(cases, bad)
	}
	for i, bad := range cases {
		zr, err := gzip.NewReader(bytes.NewReader(bad))
		if err == nil {
			var out []byte
			out, err = io.ReadAll(zr)
			if err == nil && !bytes.Equal(out, tarball) {
				continue // another valid stream: the tar table decides
			}
		}
		_, ours := FromGzip(bytes.NewReader(bad), 64<<10, 0)
		if (err == nil) != (ours == nil) {
			t.Errorf("case %d: compress/gzip: %v; FromGzip: %v", i, err, ours)
		}
	}
}
