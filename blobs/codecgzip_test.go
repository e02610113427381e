package blobs

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"math/rand"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// mixedData is n bytes alternating random stretches and text.
func mixedData(n int, seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	data := make([]byte, n)
	for i := range data {
		if i%(1<<20) < 300<<10 {
			data[i] = byte(rng.Intn(256))
		} else {
			data[i] = "lade func return nil\n"[rng.Intn(21)]
		}
	}
	return data
}

// gzipWith compresses data with lade's gzip at level, in writes of size,
// with the scheduling decision decide (nil: the process's).
func gzipWith(t testing.TB, data []byte, level, size int, decide func() int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := Compression{Type: Gzip, Level: &level}.NewWriter(&buf, 8)
	if err != nil {
		t.Fatal(err)
	}
	if nz, ok := zw.(*tracked).WriteCloser.(*nativeGzipWriter); ok && decide != nil {
		nz.decide = decide
	}
	for off := 0; off < len(data); off += size {
		if _, err := zw.Write(data[off:min(off+size, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gunzip(t testing.TB, blob []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestNativeGzip: at every level, Go's compress/gzip reads back what the
// native encoders wrote (libdeflate's multi-member files included), and
// the bytes are the same for any schedule of blocks on goroutines, any
// GOMAXPROCS and any size of writes.
func TestNativeGzip(t *testing.T) {
	if !NativeCodecs() {
		t.Setenv(CodecsEnv, "native")
		if _, err := (Compression{Type: Gzip}).NewWriter(io.Discard, 2); err == nil || !strings.Contains(err.Error(), "-tags native") {
			t.Fatalf("native gzip in a build without it: %v, want an error naming -tags native", err)
		}
		return
	}
	data := mixedData(5<<20+4321, 7)
	for level := 1; level <= 9; level++ {
		want := gzipWith(t, data, level, len(data), func() int { return 1 })
		if got := gunzip(t, want); !bytes.Equal(got, data) {
			t.Fatalf("level %d: read back %d bytes, not the %d written", level, len(got), len(data))
		}
		for _, procs := range []int{1, 2, 8} {
			runtime.GOMAXPROCS(procs)
			for _, size := range []int{1 << 20, 70001, 3<<20 + 1} {
				if got := gzipWith(t, data, level, size, nil); !bytes.Equal(got, want) {
					t.Errorf("level %d, GOMAXPROCS %d, writes of %d: the bytes changed", level, procs, size)
				}
			}
		}
		runtime.GOMAXPROCS(2)
		n := 0
		if got := gzipWith(t, data, level, 4096+7, func() int { n++; return 1 + n%3 }); !bytes.Equal(got, want) {
			t.Errorf("level %d, blocks alternating between goroutines: the bytes changed", level)
		}
	}
	for _, level := range []int{1, 6} {
		if got := gunzip(t, gzipWith(t, nil, level, 1, nil)); len(got) != 0 {
			t.Errorf("level %d: an empty stream read back as %d bytes", level, len(got))
		}
	}
}

// TestNativeGzipReaders: gzip and pigz read the native streams back.
func TestNativeGzipReaders(t *testing.T) {
	if !NativeCodecs() {
		return
	}
	data := mixedData(3<<20+5, 8)
	for _, level := range []int{2, 6} {
		blob := gzipWith(t, data, level, 1<<16, nil)
		for _, tool := range []string{"gzip", "pigz"} {
			cmd := exec.Command(tool, "-dc")
			cmd.Stdin = bytes.NewReader(blob)
			got, err := cmd.Output()
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s -dc of level %d: %d bytes, %v (run hack/install-test-deps.sh for pigz)", tool, level, len(got), err)
			}
		}
	}
}

// TestIncompressible: random blocks are stored, at once, by libdeflate;
// text and half-random blocks are compressed.
func TestIncompressible(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	random := make([]byte, 1<<20)
	rng.Read(random)
	half := append(bytes.Clone(random[:1<<19]), bytes.Repeat([]byte("text "), 1<<17)[:1<<19]...)
	if !incompressible(random) || incompressible(half) || incompressible(mixedData(1<<20, 1)[300<<10:]) {
		t.Errorf("incompressible: random %v, half random %v, want true, false", incompressible(random), incompressible(half))
	}
	if incompressible(random[:1000]) {
		t.Error("a 1000-byte block called incompressible")
	}
	if !NativeCodecs() {
		return
	}
	blob := gzipWith(t, bytes.Repeat(random, 4), 6, 1<<20, nil)
	if len(blob) > 4<<20+4*(18+5*16+64) {
		t.Errorf("4 MiB of random bytes became %d bytes: not stored", len(blob))
	}
	if !bytes.Equal(gunzip(t, blob), bytes.Repeat(random, 4)) {
		t.Error("stored blocks read back wrong")
	}
}

// TestGzipCodecKey: the blob cache key names the gzip encoder, its
// version and level, so a cache never answers one encoder's key with
// another's blob; the pure-Go keys render as before.
func TestGzipCodecKey(t *testing.T) {
	t.Setenv(CodecsEnv, "go")
	for _, level := range []int{0, 1, 6, 9} {
		if c, err := GzipCodec(level); err != nil || c != "" {
			t.Errorf("%s=go, level %d: codec %q, %v", CodecsEnv, level, c, err)
		}
	}
	t.Setenv(CodecsEnv, "brotli")
	if _, err := GzipCodec(6); err == nil || !strings.Contains(err.Error(), "use native or go") {
		t.Errorf("unknown choice: %v", err)
	}
	t.Setenv(CodecsEnv, "")
	def, err := (Compression{Type: Gzip}).codec()
	if !NativeCodecs() {
		if err != nil || def != "" {
			t.Errorf("default codec without native encoders: %q, %v", def, err)
		}
		return
	}
	want := map[int]string{0: "", 1: "isal-2.", 3: "isal-2.", 4: "libdeflate-1.", 6: "libdeflate-1.", 9: "libdeflate-1."}
	for level, prefix := range want {
		c, err := GzipCodec(level)
		if err != nil || !strings.HasPrefix(c, prefix) || (prefix == "") != (c == "") {
			t.Errorf("level %d: codec %q, %v, want %q...", level, c, err, prefix)
		}
	}
	if c3, _ := GzipCodec(3); !strings.HasSuffix(c3, "/3") || !strings.HasSuffix(def, "/5") {
		t.Errorf("codecs %q (level 3) and %q (default) do not name the native level", c3, def)
	}
	bc := &MemoryCache{}
	goKey := Key{RefID: "r", Compression: Gzip, Level: 6}
	_ = bc.Put(context.Background(), goKey, DiffPair{RefID: "r", Status: StatusNew})
	nativeKey := goKey
	nativeKey.Codec = def
	if _, ok, _ := bc.Get(context.Background(), nativeKey); ok || goKey.String() != "r|gzip|6|0" {
		t.Errorf("the cache answered a %s key with the pure-Go blob (keys %q, %q)", def, goKey, nativeKey)
	}
}
