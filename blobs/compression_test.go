package blobs

import (
	"bytes"
	"io"
	"math/rand"
	"strings"
	"testing"

	"github.com/lade-build/lade/exporter/exportertest"
)

func intp(i int) *int { return &i }

func TestCompressionValidate(t *testing.T) {
	cases := []struct {
		c    Compression
		want string
	}{
		{Compression{Type: Gzip}, ""},
		{Compression{Type: Gzip, Level: intp(0)}, ""},
		{Compression{Type: Gzip, Level: intp(9)}, ""},
		{Compression{Type: Gzip, Level: intp(10)}, "out of range for gzip: use 0 to 9"},
		{Compression{Type: GzipCompat, Level: intp(-1)}, "out of range"},
		{Compression{Type: Zstd, Level: intp(22)}, ""},
		{Compression{Type: Zstd, Level: intp(0)}, "out of range for zstd: use 1 to 22"},
		{Compression{Type: Uncompressed, Level: intp(1)}, "level 1 given for uncompressed"},
		{Compression{Type: "brotli"}, `unknown compression "brotli"`},
	}
	for _, c := range cases {
		err := c.c.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: error %v, want %q", c.c, err, c.want)
		}
	}
}

func TestParseType(t *testing.T) {
	for in, want := range map[string]Type{"gzip": Gzip, "GZIP": Gzip, "none": Uncompressed, "zstd": Zstd, "gzip-compat": GzipCompat} {
		if got, err := ParseType(in); err != nil || got != want {
			t.Errorf("ParseType(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseType("xz"); err == nil {
		t.Error("xz accepted")
	}
}

// TestCompressionDeterministic: the bytes never depend on the workers.
func TestCompressionDeterministic(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	data := make([]byte, 3<<20+123)
	for i := range data {
		data[i] = byte('a' + rng.Intn(6))
	}
	for _, typ := range []Type{Gzip, GzipCompat, Zstd, Uncompressed} {
		var first []byte
		for _, workers := range []int{1, 2, 8} {
			var buf bytes.Buffer
			zw, err := Compression{Type: typ}.NewWriter(&buf, workers)
			if err != nil {
				t.Fatal(err)
			}
			// odd write sizes
			for off := 0; off < len(data); off += 70001 {
				_, _ = zw.Write(data[off:min(off+70001, len(data))])
			}
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = buf.Bytes()
				mt, _ := Compression{Type: typ}.MediaType(false)
				r, err := exportertest.Decompress(mt, bytes.NewReader(first))
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%s: round trip failed: %v", typ, err)
				}
			} else if !bytes.Equal(first, buf.Bytes()) {
				t.Errorf("%s: %d workers changed the bytes", typ, workers)
			}
		}
	}
}
