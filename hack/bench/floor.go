package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/lade-build/lade/blobs"
)

// floorCores is the number of cores the floors are divided over.
const floorCores = 2

// floors are CPU seconds of the work every exporter must do for the
// workload's layers, measured in-process one stage at a time: generating
// the layer tars, hashing them (diffIDs), compressing them with the chosen
// library at 2 workers, and hashing the blobs; a tarball output (the oci
// case) also delivers lade's gzip blobs to the client (Stream).
//
// gzip has two floors. Gzip is klauspost's pgzip at level 6, the cheapest
// pure-Go encoder, whose blobs are about 2 % larger than stock's; GzipLade
// is lade's own default encoder (blobs.Compression, libdeflate at level 5
// when the bench is built with -tags native), the cheapest encoder found
// whose blobs are no larger than stock's (issue #17's byte target). A
// case's floor is the one of the encoder that meets its byte target.
type floors struct {
	TarBytes int64
	Tar      time.Duration // tar generation (reading the files included)
	SHA      time.Duration // one sha256 pass over the tars
	Gzip     stage         // klauspost pgzip, level 6, 1 MiB blocks, 2 workers
	GzipLade stage         // lade's default gzip encoder, 2 workers
	Gzip1    stage         // lade's gzip encoder at level 1 (ISA-L under -tags native), 2 workers
	Zstd     stage         // klauspost zstd, level 3, concurrency 1 (lade's encoder: the same bytes as at 2, for less CPU)
	// GzipCodec and Gzip1Codec name lade's encoders measured (blobs.GzipCodec).
	GzipCodec, Gzip1Codec string
	// Stream is the CPU of delivering lade's gzip blobs to a client's
	// file through BuildKit's session protocol as buildctl speaks it to
	// lade-buildkitd (tunnel), both ends; StreamDirect the same over one
	// gRPC connection, without the tunnel (streamer), for reference.
	Stream, StreamDirect time.Duration
}

// stage is a compression stage: its CPU time, the wall time it took at 2
// workers, its output size and the CPU time of hashing its output.
type stage struct {
	CPU, Wall time.Duration
	Out       int64
	SHA       time.Duration
}

// For returns the floor of one compression at a level (0 the default):
// the CPU seconds of every pass divided over floorCores, with lade's own
// gzip encoder (see floors). An uncompressed blob is the tar, so it needs
// one hash pass; a compressed one needs two.
func (f *floors) For(compression string, level int) time.Duration {
	var cpu time.Duration
	switch {
	case compression == "gzip" && level == 1:
		cpu = f.Tar + f.SHA + f.Gzip1.CPU + f.Gzip1.SHA
	case compression == "gzip" && level == 0:
		cpu = f.Tar + f.SHA + f.GzipLade.CPU + f.GzipLade.SHA
	case compression == "zstd" && level == 0:
		cpu = f.Tar + f.SHA + f.Zstd.CPU + f.Zstd.SHA
	case compression == "uncompressed":
		cpu = f.Tar + f.SHA
	default:
		return 0
	}
	return cpu / floorCores
}

// ForCase returns the floor of a case: For its compression, plus for the
// oci case (a tarball sent to the client) the stream of its blobs.
func (f *floors) ForCase(name, compression string, level int) time.Duration {
	fl := f.For(compression, level)
	if name == "oci" && fl > 0 {
		fl += f.Stream / floorCores
	}
	return fl
}

// PgzipFor is the gzip floor with klauspost's pgzip at level 6, whose
// blobs are larger than stock's: the pure-Go floor issue #5 stopped at.
func (f *floors) PgzipFor() time.Duration {
	return (f.Tar + f.SHA + f.Gzip.CPU + f.Gzip.SHA) / floorCores
}

// measureFloors measures the floors on the workload's layers, one layer at
// a time (the largest held in memory), each stage reps times: a stage's
// floor is its fastest run (the least disturbed by other load).
func measureFloors(w *workload, reps int) (*floors, error) {
	f := &floors{}
	var err error
	if f.GzipCodec, err = blobs.GzipCodec(ladeGzip(0).EffectiveLevel()); err != nil {
		return nil, err
	}
	if f.Gzip1Codec, err = blobs.GzipCodec(1); err != nil {
		return nil, err
	}
	var maxTar int64
	for _, p := range w.Parts {
		maxTar = max(maxTar, p.Bytes+int64(p.Files)*3072+1<<20)
	}
	st, err := newStreamer(filepath.Dir(w.Dir))
	if err != nil {
		return nil, fmt.Errorf("stream floor: %w", err)
	}
	defer st.close()
	tn, err := newTunnel(context.Background(), filepath.Dir(w.Dir))
	if err != nil {
		return nil, fmt.Errorf("stream floor: %w", err)
	}
	defer tn.close()
	tarBuf := bytes.NewBuffer(make([]byte, 0, maxTar))
	outBuf := bytes.NewBuffer(make([]byte, 0, maxTar+maxTar/8))
	for _, p := range w.Parts {
		var best floors
		for rep := range reps {
			var one floors
			tarBuf.Reset()
			runtime.GC()
			cpu := cpuTime()
			if err := writeTar(tarBuf, filepath.Join(w.Dir, p.Path), p.Dest); err != nil {
				return nil, fmt.Errorf("tar %s: %w", p.Name, err)
			}
			one.Tar = cpuTime() - cpu
			tarball := tarBuf.Bytes()
			one.TarBytes = int64(len(tarball))
			one.SHA = hashCPU(tarball)
			for _, c := range []struct {
				st  *stage
				new func(io.Writer) (io.WriteCloser, error)
			}{
				{&one.Gzip, newFloorGzip},
				{&one.Gzip1, newLadeGzip(1)},
				{&one.Zstd, newFloorZstd},
				{&one.GzipLade, newLadeGzip(0)}, // last: its blob is streamed below
			} {
				outBuf.Reset()
				runtime.GC()
				cpu, wall := cpuTime(), time.Now()
				zw, err := c.new(outBuf)
				if err != nil {
					return nil, err
				}
				if _, err := zw.Write(tarball); err != nil {
					return nil, err
				}
				if err := zw.Close(); err != nil {
					return nil, err
				}
				*c.st = stage{CPU: cpuTime() - cpu, Wall: time.Since(wall), Out: int64(outBuf.Len())}
				c.st.SHA = hashCPU(outBuf.Bytes())
			}
			runtime.GC()
			if one.StreamDirect, err = st.send(context.Background(), outBuf.Bytes()); err != nil {
				return nil, err
			}
			runtime.GC()
			if one.Stream, err = tn.send(context.Background(), outBuf.Bytes()); err != nil {
				return nil, err
			}
			if rep == 0 {
				best = one
			} else {
				best = best.fastest(one)
			}
		}
		f.add(best)
	}
	return f, nil
}

// fastest returns the faster of f and o for every stage.
func (f floors) fastest(o floors) floors {
	st := func(a, b stage) stage {
		if b.CPU < a.CPU {
			a.CPU, a.Wall = b.CPU, b.Wall
		}
		a.SHA = min(a.SHA, b.SHA)
		return a
	}
	f.Tar, f.SHA, f.Stream = min(f.Tar, o.Tar), min(f.SHA, o.SHA), min(f.Stream, o.Stream)
	f.StreamDirect = min(f.StreamDirect, o.StreamDirect)
	f.Gzip, f.Zstd = st(f.Gzip, o.Gzip), st(f.Zstd, o.Zstd)
	f.GzipLade, f.Gzip1 = st(f.GzipLade, o.GzipLade), st(f.Gzip1, o.Gzip1)
	return f
}

// add sums o into f.
func (f *floors) add(o floors) {
	f.TarBytes += o.TarBytes
	f.Tar += o.Tar
	f.SHA += o.SHA
	f.Stream += o.Stream
	f.StreamDirect += o.StreamDirect
	for _, p := range []struct{ a, b *stage }{{&f.Gzip, &o.Gzip}, {&f.GzipLade, &o.GzipLade}, {&f.Gzip1, &o.Gzip1}, {&f.Zstd, &o.Zstd}} {
		p.a.CPU += p.b.CPU
		p.a.Wall += p.b.Wall
		p.a.Out += p.b.Out
		p.a.SHA += p.b.SHA
	}
}

func newFloorGzip(w io.Writer) (io.WriteCloser, error) {
	zw, err := pgzip.NewWriterLevel(w, 6)
	if err != nil {
		return nil, err
	}
	return zw, zw.SetConcurrency(1<<20, 2)
}

// newLadeGzip returns lade's gzip encoder at a level (0 the default) with
// 2 workers, as the daemon runs it.
func newLadeGzip(level int) func(io.Writer) (io.WriteCloser, error) {
	c := ladeGzip(level)
	return func(w io.Writer) (io.WriteCloser, error) { return c.NewWriter(w, 2) }
}

// ladeGzip is lade's gzip compression at a level (0 the default).
func ladeGzip(level int) blobs.Compression {
	c := blobs.Compression{Type: blobs.Gzip}
	if level != 0 {
		c.Level = &level
	}
	return c
}

func newFloorZstd(w io.Writer) (io.WriteCloser, error) {
	return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
}

// hashCPU returns the CPU time of one sha256 pass over b.
func hashCPU(b []byte) time.Duration {
	runtime.GC()
	cpu := cpuTime()
	h := sha256.New()
	h.Write(b)
	_ = h.Sum(nil)
	return cpuTime() - cpu
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeTar writes the tar of the context path src as a layer that puts it
// at dest (parent directories included, as COPY's layer has them).
func writeTar(w io.Writer, src, dest string) error {
	tw := tar.NewWriter(w)
	for _, d := range parents(dest) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		name := filepath.Join(dest, rel)[1:]
		if name == "" {
			return nil // the root of a COPY to /
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name, hdr.Format = name, tar.FormatPAX
		hdr.Uname, hdr.Gname = "", ""
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyBuffer(tw, f, buf)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// parents returns the parent directories of dest, outermost first, without
// the leading slash.
func parents(dest string) []string {
	var out []string
	for d := filepath.Dir(dest); d != "/" && d != "."; d = filepath.Dir(d) {
		out = append([]string{d[1:]}, out...)
	}
	return out
}
