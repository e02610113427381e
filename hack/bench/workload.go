package main

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// workload is the generated build context.
type workload struct {
	Version int     `json:"version"`
	Dir     string  `json:"dir"`
	Scale   float64 `json:"scale"`
	// Parts are the context entries that become layers, in Dockerfile
	// order: busybox, the Go tree, the random file, the small files.
	Parts []part `json:"parts"`
}

// part is one COPY of the Dockerfile: a context path and its size.
type part struct {
	Name  string `json:"name"`
	Path  string `json:"path"` // relative to the context
	Dest  string `json:"dest"`
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
}

// Bytes returns the total file bytes of the parts.
func (w *workload) Bytes() int64 {
	var n int64
	for _, p := range w.Parts {
		n += p.Bytes
	}
	return n
}

// mainDockerfile is the single-platform workload: four COPY layers and a
// RUN that changes nothing (an empty layer), run with busybox's sh. The
// base layer has /dev, /proc and /sys, so that the RUN does not leave
// their mount points behind.
const mainDockerfile = `FROM scratch
COPY base/ /
COPY go /usr/local/go
COPY random /data/random
COPY small /data/small
SHELL ["/bin/busybox", "sh", "-c"]
RUN true
`

// multiDockerfile is the two-platform workload: the same COPY layers, no
// RUN (no emulation here).
const multiDockerfile = `FROM scratch
COPY base/ /
COPY go /usr/local/go
COPY random /data/random
COPY small /data/small
`

// runDockerfile is the RUN workload (the "run" case): its layers are made
// by RUN steps inside the build, from busybox alone, so the build has no
// large context to send or hash and the export is the largest part of its
// memory, as in builds whose layers come from RUN steps: random bytes,
// text, and small files (%d MiB, %d numbers, %d files at the scale).
const runDockerfile = `FROM scratch
COPY base/ /
SHELL ["/bin/busybox", "sh", "-c"]
RUN mkdir -p /data && dd if=/dev/urandom of=/data/random bs=1048576 count=%d 2>/dev/null
RUN mkdir -p /data/text && seq 1 %d > /data/text/numbers && sed 's/^/line /' /data/text/numbers > /data/text/lines
RUN mkdir -p /data/small && cd /data/small && i=0 && while [ $i -lt %d ]; do echo "small file $i" > f$i; i=$((i+1)); done
RUN true
`

// writeDockerfiles writes the Dockerfiles of the cases into the context
// dir at scale.
func writeDockerfiles(dir string, scale float64) error {
	run := fmt.Sprintf(runDockerfile, max(1, int(scale*randomBytes)>>20), max(1, int(scale*10_000_000)), max(1, int(scale*smallFiles)))
	for name, data := range map[string]string{"Dockerfile": mainDockerfile, "Dockerfile.multi": multiDockerfile, "Dockerfile.run": run} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// workloadVersion changes when the generated context does.
const workloadVersion = 2

// Full-scale sizes, from the issue.
const (
	randomBytes = 256 << 20
	smallFiles  = 20000
	smallMax    = 2048 // small files are 0..2 KiB, 1 KiB on average
)

// prepareWorkload writes the build context into dir at scale, or reuses it
// when its stamp says it was written at the same scale.
func prepareWorkload(dir string, scale float64) (*workload, error) {
	stamp := filepath.Join(dir, ".stamp.json")
	if b, err := os.ReadFile(stamp); err == nil {
		var w workload
		if json.Unmarshal(b, &w) == nil && w.Scale == scale && w.Dir == dir && w.Version == workloadVersion {
			logf("reusing the build context %s (scale %g, %d MB)", dir, scale, w.Bytes()/1e6)
			if err := writeDockerfiles(dir, scale); err != nil {
				return nil, err
			}
			return &w, warmPageCache(dir)
		}
	}
	logf("writing the build context %s at scale %g", dir, scale)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	w := &workload{Version: workloadVersion, Dir: dir, Scale: scale}
	steps := []func(*workload) (part, error){copyBusybox, copyGoTree, writeRandom, writeSmallFiles}
	for _, step := range steps {
		p, err := step(w)
		if err != nil {
			return nil, err
		}
		w.Parts = append(w.Parts, p)
	}
	if err := writeDockerfiles(dir, scale); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(w, "", "  ")
	if err != nil {
		return nil, err
	}
	return w, os.WriteFile(stamp, b, 0o644)
}

// copyBusybox writes the base layer: Debian's busybox-static as
// /bin/busybox and empty /dev, /proc and /sys.
func copyBusybox(w *workload) (part, error) {
	for _, d := range []string{"bin", "dev", "proc", "sys"} {
		if err := os.MkdirAll(filepath.Join(w.Dir, "base", d), 0o755); err != nil {
			return part{}, err
		}
	}
	n, err := copyFile("/bin/busybox", filepath.Join(w.Dir, "base", "bin", "busybox"), 0o755)
	if err != nil {
		return part{}, fmt.Errorf("busybox-static (run hack/install-test-deps.sh): %w", err)
	}
	return part{Name: "busybox", Path: "base", Dest: "/", Files: 1, Bytes: n}, nil
}

// copyGoTree copies the Go toolchain tree ($(go env GOROOT)). Below scale 1
// it keeps each file with probability scale, chosen by a hash of its path
// (the same files every time, the same mix of text and binaries).
func copyGoTree(w *workload) (part, error) {
	root := runtime.GOROOT()
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		root = strings.TrimSpace(string(out))
	}
	dst := filepath.Join(w.Dir, "go")
	p := part{Name: "go tree", Path: "go", Dest: "/usr/local/go"}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case !d.Type().IsRegular() || !keep(rel, w.Scale):
			return nil
		}
		n, err := copyFile(path, target, info.Mode().Perm())
		p.Files++
		p.Bytes += n
		return err
	})
	return p, err
}

// keep reports whether the file at rel is part of a tree scaled by scale.
func keep(rel string, scale float64) bool {
	if scale >= 1 {
		return true
	}
	h := fnv.New32a()
	h.Write([]byte(rel))
	return float64(h.Sum32()%10000) < scale*10000
}

// writeRandom writes scale × 256 MiB from /dev/urandom.
func writeRandom(w *workload) (part, error) {
	n := int64(float64(randomBytes) * w.Scale)
	src, err := os.Open("/dev/urandom")
	if err != nil {
		return part{}, err
	}
	defer src.Close()
	f, err := os.Create(filepath.Join(w.Dir, "random"))
	if err != nil {
		return part{}, err
	}
	if _, err := io.CopyBuffer(f, io.LimitReader(src, n), make([]byte, 1<<20)); err != nil {
		f.Close()
		return part{}, err
	}
	return part{Name: "random", Path: "random", Dest: "/data/random", Files: 1, Bytes: n}, f.Close()
}

// writeSmallFiles writes scale × 20,000 files of 0-2 KiB of text, 200
// per directory.
func writeSmallFiles(w *workload) (part, error) {
	count := int(float64(smallFiles) * w.Scale)
	rng := rand.New(rand.NewPCG(5, 5))
	text := textBlock(rng, 64<<10)
	p := part{Name: "small files", Path: "small", Dest: "/data/small"}
	for i := range count {
		dir := filepath.Join(w.Dir, "small", fmt.Sprintf("d%03d", i/200))
		if i%200 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return p, err
			}
		}
		size := rng.IntN(smallMax + 1)
		off := rng.IntN(len(text) - size)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d.txt", i)), text[off:off+size], 0o644); err != nil {
			return p, err
		}
		p.Files++
		p.Bytes += int64(size)
	}
	return p, nil
}

// textBlock returns n bytes of word-like, compressible text.
func textBlock(rng *rand.Rand, n int) []byte {
	words := []string{"func ", "return ", "err ", "if ", "nil", " {\n", "}\n", "context ", "package ", "import ",
		"layer ", "blob ", "digest ", "the ", "of ", "a ", "to ", "for ", "range ", "string ", "int64 ", "// ", "\t"}
	b := make([]byte, 0, n+16)
	for len(b) < n {
		b = append(b, words[rng.IntN(len(words))]...)
		if rng.IntN(12) == 0 {
			b = fmt.Appendf(b, "x%d ", rng.IntN(100000))
		}
	}
	return b[:n]
}

// copyFile copies src to dst with mode perm and returns the bytes copied.
func copyFile(src, dst string, perm fs.FileMode) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// warmPageCache reads every file of dir once, so the first build does not
// pay for disk reads the later ones do not.
func warmPageCache(dir string) error {
	buf := make([]byte, 1<<20)
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyBuffer(io.Discard, f, buf)
		return err
	})
}
