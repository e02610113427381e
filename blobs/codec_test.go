package blobs

import (
	"bytes"
	"context"
	"io"
	"math/rand"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/lade-build/lade/blobs/internal/libzstd"
)

func TestCodecWorkers(t *testing.T) {
	cases := []struct{ active, procs, limit, want int }{
		{1, 2, 2, 2}, // one layer on two cores: the second core helps it
		{2, 2, 2, 1}, // two layers on two cores: one goroutine each
		{3, 2, 2, 1}, // more layers than cores
		{1, 1, 8, 1}, // one core
		{1, 8, 2, 2}, // the caller's bound
		{3, 8, 8, 6}, // five cores free
		{8, 8, 8, 1}, // every core taken
		{0, 2, 2, 2}, // a writer not counted yet counts as itself
		{1, 2, 1, 1}, // limit 1: never a second goroutine
		{1, 2, 0, 1}, // a bad limit still gives one
	}
	for _, c := range cases {
		if got := codecWorkers(c.active, c.procs, c.limit); got != c.want {
			t.Errorf("codecWorkers(active %d, procs %d, limit %d) = %d, want %d", c.active, c.procs, c.limit, got, c.want)
		}
	}
}

// TestInFlight: a writer counts as a layer in flight from NewWriter to its
// first Close, for every type.
func TestInFlight(t *testing.T) {
	base := inFlight.Load()
	for _, typ := range Types {
		zw, err := Compression{Type: typ}.NewWriter(io.Discard, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got := inFlight.Load(); got != base+1 {
			t.Fatalf("%s: %d layers in flight with one writer open, want %d", typ, got, base+1)
		}
		_ = zw.Close()
		_ = zw.Close()
		if got := inFlight.Load(); got != base {
			t.Fatalf("%s: %d layers in flight after Close twice, want %d", typ, got, base)
		}
	}
}

// TestZstdSchedule: the zstd writer encodes on a second goroutine
// whenever the process and the caller allow two, however many layers are
// in flight, and on the caller's goroutine on one core or with a limit
// of one.
func TestZstdSchedule(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	data := bytes.Repeat([]byte("layer "), 1<<19)
	for _, c := range []struct {
		others, procs, limit int
		async                bool
	}{{0, 2, 2, true}, {1, 2, 2, true}, {3, 2, 2, true}, {0, 1, 2, false}, {0, 2, 1, false}} {
		runtime.GOMAXPROCS(c.procs)
		inFlight.Add(int64(c.others))
		zw, err := Compression{Type: Zstd}.NewWriter(io.Discard, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = zw.Write(data)
		z := zw.(*tracked).WriteCloser.(*zstdWriter)
		if async := z.queue != nil; async != c.async {
			t.Errorf("%d other layers in flight on %d cores, limit %d: second goroutine used %v, want %v", c.others, c.procs, c.limit, async, c.async)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		inFlight.Add(-int64(c.others))
	}
}

// TestZstdBytesAcrossSchedules: for each encoder, the bytes are the
// encoder's own on one goroutine whatever goroutine each chunk went
// through, for odd write sizes and for switches in the middle of a
// stream; klauspost's are its bytes at concurrency 1 and at 2 (equal).
func TestZstdBytesAcrossSchedules(t *testing.T) {
	rng := rand.New(rand.NewSource(17))
	data := make([]byte, 5<<20+4321)
	for i := range data {
		if i%(1<<20) < 300<<10 { // some incompressible stretches
			data[i] = byte(rng.Intn(256))
		} else {
			data[i] = byte('a' + rng.Intn(5))
		}
	}
	codecs := []string{"go"}
	if libzstd.Available {
		codecs = append(codecs, "libzstd")
	}
	for _, codec := range codecs {
		t.Run(codec, func(t *testing.T) {
			t.Setenv(ZstdCodecEnv, codec)
			want := zstdReference(t, codec, data)
			schedules := map[string]func(n int) int{
				"sync":        func(int) int { return 1 },
				"async":       func(int) int { return 2 },
				"alternating": func(n int) int { return 1 + n%2 },
				"random":      func(int) int { return 1 + rng.Intn(2) },
			}
			for name, schedule := range schedules {
				for _, size := range []int{1 << 20, 70001, 4096 + 7, 3<<20 + 1} {
					var buf bytes.Buffer
					z, err := newZstdWriter(&buf, 3, 2)
					if err != nil {
						t.Fatal(err)
					}
					calls := 0
					z.decide = func() int { calls++; return schedule(calls) }
					for off := 0; off < len(data); off += size {
						if _, err := z.Write(data[off:min(off+size, len(data))]); err != nil {
							t.Fatal(err)
						}
					}
					if err := z.Close(); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(buf.Bytes(), want) {
						t.Errorf("schedule %s, writes of %d bytes: %d bytes differ from the encoder's own (%d)", name, size, buf.Len(), len(want))
					}
				}
			}
		})
	}
}

// zstdReference compresses data in one write with the encoder alone.
func zstdReference(t *testing.T, codec string, data []byte) []byte {
	t.Helper()
	if codec == "libzstd" {
		var buf bytes.Buffer
		enc, err := libzstd.NewWriter(&buf, 3)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = enc.Write(data)
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	var want []byte
	for _, conc := range []int{1, 2} {
		var buf bytes.Buffer
		enc, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(conc), zstd.WithZeroFrames(true))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = enc.Write(data)
		_ = enc.Close()
		if want == nil {
			want = bytes.Clone(buf.Bytes())
		} else if !bytes.Equal(want, buf.Bytes()) {
			t.Fatal("klauspost zstd: concurrency 2 changed the bytes; lade's zstd bytes are concurrency 1's")
		}
	}
	return want
}

// TestZstdCodecChoice: the environment picks the encoder, the blob cache
// key names a non-default one, and a wrong choice says what to do.
func TestZstdCodecChoice(t *testing.T) {
	gzipCodec, _ := (Compression{Type: Gzip}).codec()
	t.Setenv(ZstdCodecEnv, "brotli")
	if _, err := (Compression{Type: Zstd}).NewWriter(io.Discard, 2); err == nil || !strings.Contains(err.Error(), "use go or libzstd") {
		t.Errorf("unknown encoder: %v", err)
	}
	if c, err := (Compression{Type: Gzip}).codec(); err != nil || c != gzipCodec {
		t.Errorf("gzip's codec with %s set: %q, %v, want %q", ZstdCodecEnv, c, err, gzipCodec)
	}
	t.Setenv(ZstdCodecEnv, "libzstd")
	codec, err := ZstdCodec()
	if !libzstd.Available {
		if err == nil || !strings.Contains(err.Error(), "-tags native") {
			t.Fatalf("libzstd in a build without cgo: %v", err)
		}
		return
	}
	if err != nil || !strings.HasPrefix(codec, "libzstd-1.") {
		t.Fatalf("ZstdCodec() = %q, %v", codec, err)
	}
	k := Key{RefID: "r", Compression: Zstd, Level: 3}
	plain := k.String()
	k.Codec = codec
	if plain != "r|zstd|3|0" || k.String() != plain+"|"+codec {
		t.Errorf("keys %q and %q", plain, k.String())
	}
	var buf bytes.Buffer
	zw, err := (Compression{Type: Zstd}).NewWriter(&buf, 2)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = zw.Write(bytes.Repeat([]byte("lade "), 1000))
	_ = zw.Close()
	d, _ := zstd.NewReader(&buf)
	got, err := io.ReadAll(d)
	if err != nil || len(got) != 5000 {
		t.Errorf("libzstd blob read back: %d bytes, %v", len(got), err)
	}
}

// errWriter fails every write.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// TestZstdAsyncError: an error of the underlying writer met on the second
// goroutine comes back from Write or Close.
func TestZstdAsyncError(t *testing.T) {
	z, err := newZstdWriter(errWriter{}, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	z.decide = func() int { return 2 }
	chunk := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, 1<<18)
	var werr error
	for i := 0; i < 8 && werr == nil; i++ {
		_, werr = z.Write(chunk)
	}
	if cerr := z.Close(); werr == nil && cerr == nil {
		t.Fatal("the writer's error was lost")
	}
}

// TestZstdCodecCacheKey: a blob cache never hands out a blob of one zstd
// encoder for the other's, and hands out each encoder's own.
func TestZstdCodecCacheKey(t *testing.T) {
	if !libzstd.Available {
		t.Setenv(ZstdCodecEnv, "libzstd")
		if _, err := (Compression{Type: Zstd}).codec(); err == nil {
			t.Fatal("libzstd chosen in a build without cgo")
		}
		return
	}
	bc := &MemoryCache{}
	k := Key{RefID: "r", Compression: Zstd, Level: 3}
	_ = bc.Put(context.Background(), k, DiffPair{RefID: "r", Status: StatusNew})
	t.Setenv(ZstdCodecEnv, "libzstd")
	codec, err := (Compression{Type: Zstd}).codec()
	if err != nil {
		t.Fatal(err)
	}
	k.Codec = codec
	if _, ok, _ := bc.Get(context.Background(), k); ok {
		t.Errorf("the cache answered a libzstd key with klauspost's blob")
	}
}
