package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// TestStreamer sends data larger than a message, then a shorter one: the
// file holds exactly the last data sent, and the CPU was measured.
func TestStreamer(t *testing.T) {
	s, err := newStreamer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	checkSends(t, s, s.file, 1, 3*streamFloorChunk+12345, 777)
}

// fileSender is a stream floor: it sends data to a file and returns the
// CPU time it took.
type fileSender interface {
	send(ctx context.Context, data []byte) (time.Duration, error)
}

// checkSends sends random data of each size through s in turn: after each,
// the file at path holds exactly the data sent, and the CPU was measured.
func checkSends(t *testing.T, s fileSender, path string, seed uint64, sizes ...int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed+1))
	for _, n := range sizes {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		cpu, err := s.send(context.Background(), data)
		if err != nil {
			t.Fatal(err)
		}
		if cpu <= 0 {
			t.Errorf("%d bytes: CPU %v, want > 0", n, cpu)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("file holds %d bytes, want the %d sent", len(got), n)
		}
	}
}

// TestForCase adds the (tunnelled) stream, over the cores, to the oci case
// only; the single-connection stream is for reference.
func TestForCase(t *testing.T) {
	f := &floors{Tar: 4 * time.Second, SHA: time.Second, GzipLade: stage{CPU: 10 * time.Second, SHA: time.Second}, Stream: 2 * time.Second, StreamDirect: 40 * time.Second}
	if got, want := f.ForCase("gzip", "gzip", 0), 8*time.Second; got != want {
		t.Errorf("gzip: %v, want %v", got, want)
	}
	if got, want := f.ForCase("oci", "gzip", 0), 9*time.Second; got != want {
		t.Errorf("oci: %v, want %v", got, want)
	}
	if got := f.ForCase("oci", "brotli", 0); got != 0 {
		t.Errorf("oci with no compression floor: %v, want 0", got)
	}
}
