package main

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

func TestCPUBetween(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var samples []cpuSample
	for i := 0; i <= 10; i++ { // one sample every 100 ms, 30 ms of CPU each
		samples = append(samples, cpuSample{at: t0.Add(time.Duration(i) * 100 * time.Millisecond), cpu: time.Duration(i) * 30 * time.Millisecond})
	}
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	cases := []struct {
		from, to time.Time
		want     time.Duration
	}{
		{ms(200), ms(500), 90 * time.Millisecond}, // on samples
		{ms(250), ms(450), 90 * time.Millisecond}, // widened to the samples around
		{ms(-50), ms(300), 0},                     // starts before the first sample
		{ms(300), ms(1050), 0},                    // ends after the last
		{time.Time{}, ms(300), 0},                 // no start in the progress
	}
	for _, c := range cases {
		if got := cpuBetween(samples, c.from, c.to); got != c.want {
			t.Errorf("cpuBetween(%s, %s) = %s, want %s", c.from.Sub(t0), c.to.Sub(t0), got, c.want)
		}
	}
}

func TestStageOf(t *testing.T) {
	cases := map[int][]string{
		stageHash:     {"crypto/internal/fips140/sha256.blockSHANI", "crypto/sha256.(*Digest).Write", "io.copyBuffer"},
		stageCompress: {"runtime.mallocgc", "github.com/klauspost/compress/zstd.(*fastEncoder).Encode", "os.(*File).Read"},
		stageTar:      {"syscall.Syscall", "os.(*File).Read", "io.copyBuffer", "github.com/containerd/continuity/fs.(*changeWriter).HandleChange"},
		stageWrite:    {"syscall.Syscall", "os.(*File).Write", "github.com/containerd/containerd/v2/plugins/content/local.(*writer).Write", "github.com/klauspost/compress/zstd.(*Encoder).nextBlock"},
		stageOther:    {"runtime.gcBgMarkWorker"},
	}
	if got := stageOf([]string{"runtime._ExternalCode"}); got != stageCompress {
		t.Errorf("C code (libzstd) counted as %s", stageNames[got])
	}
	for want, funcs := range cases {
		if got := stageOf(funcs); got != want {
			t.Errorf("stage of %v = %s, want %s", funcs, stageNames[got], stageNames[want])
		}
	}
	fn := func(name string) *profile.Location {
		return &profile.Location{Line: []profile.Line{{Function: &profile.Function{Name: name}}}}
	}
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Sample: []*profile.Sample{
			{Location: []*profile.Location{fn("crypto/sha256.block")}, Value: []int64{1, 10e6}},
			{Location: []*profile.Location{fn("compress/flate.(*compressor).deflate")}, Value: []int64{3, 30e6}},
		},
	}
	var st [nStages]time.Duration
	addProfile(&st, p)
	addProfile(&st, p)
	if st[stageHash] != 20*time.Millisecond || st[stageCompress] != 60*time.Millisecond || st[stageOther] != 0 {
		t.Errorf("stages %v", st)
	}
}

// TestOCILayerBytes: an OCI layout's index -> image index -> manifests,
// with the attestation manifest and a layer shared by two platforms
// counted out.
func TestOCILayerBytes(t *testing.T) {
	mf := func(sizes ...int64) []byte {
		var m manifestOrIndex
		for _, s := range sizes {
			m.Layers = append(m.Layers, struct {
				Digest string `json:"digest"`
				Size   int64  `json:"size"`
			}{fmt.Sprintf("sha256:%d", s), s})
		}
		b, _ := json.Marshal(m)
		return b
	}
	files := map[string][]byte{
		"index.json":          []byte(`{"manifests":[{"digest":"sha256:idx"}]}`),
		"blobs/sha256/idx":    []byte(`{"manifests":[{"digest":"sha256:amd"},{"digest":"sha256:arm"},{"digest":"sha256:att","annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]}`),
		"blobs/sha256/amd":    mf(100, 7),
		"blobs/sha256/arm":    mf(100, 9),
		"blobs/sha256/att":    mf(5000),
		"blobs/sha256/layer1": make([]byte, 100),
	}
	path := filepath.Join(t.TempDir(), "oci.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for name, b := range files {
		_ = tw.WriteHeader(&tar.Header{Name: name, Size: int64(len(b)), Mode: 0o644})
		_, _ = tw.Write(b)
	}
	_ = tw.Close()
	_ = f.Close()
	got, err := ociLayerBytes(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != 116 {
		t.Errorf("layer bytes %d, want 116 (100 shared + 7 + 9, attestation left out)", got)
	}
}
