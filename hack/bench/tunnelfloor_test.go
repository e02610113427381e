package main

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// TestTunnel sends data of several session messages, then a shorter one,
// through the tunnelled session: the file holds exactly the last data
// sent, and the CPU was measured.
func TestTunnel(t *testing.T) {
	tn, err := newTunnel(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer tn.close()
	checkSends(t, tn, tn.file, 3, 5<<20+12345, 777)
}

// BenchmarkStreamFloor sends 64 MiB per op through the tunnelled session
// and through the single connection, reporting CPU seconds per 341 MB (the
// workload's gzip blobs). With -cpuprofile, the tunnel's goroutines carry
// side=daemon or side=client (go tool pprof -tagfocus side=daemon).
func BenchmarkStreamFloor(b *testing.B) {
	data := make([]byte, 64<<20)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	tn, err := newTunnel(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer tn.close()
	st, err := newStreamer(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.close()
	for _, c := range []struct {
		name string
		send func(context.Context, []byte) (time.Duration, error)
	}{{"tunnel", tn.send}, {"single", st.send}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var cpu time.Duration
			for b.Loop() {
				d, err := c.send(context.Background(), data)
				if err != nil {
					b.Fatal(err)
				}
				cpu += d
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N)*341e6/float64(len(data)), "cpu-s/341MB")
		})
	}
}
