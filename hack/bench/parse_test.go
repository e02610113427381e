package main

import (
	"testing"
	"time"
)

// progressLog is buildctl rawjson progress of an export, as lade-buildkitd
// writes it: the exporter vertex, "exporting layers" reported twice (the
// span is widened), two lade layer statuses and "sending tarball".
const progressLog = `{"vertexes":[{"digest":"sha256:aa","name":"[internal] load build definition from Dockerfile","started":"2026-12-04T21:28:43Z","completed":"2026-12-04T21:28:44Z"}]}
not json: buildctl's own line
{"vertexes":[{"digest":"sha256:bb","name":"exporting to oci image format","started":"2026-12-04T21:28:50Z"}]}
{"statuses":[{"id":"exporting layers","vertex":"sha256:bb","started":"2026-12-04T21:28:50Z"},{"id":"compressing layer 1 (lade gzip)","vertex":"sha256:bb","started":"2026-12-04T21:28:50Z"}]}
{"statuses":[{"id":"compressing layer 2 (lade gzip)","vertex":"sha256:bb","started":"2026-12-04T21:28:50Z","completed":"2026-12-04T21:28:51Z"},{"id":"sending tarball","vertex":"sha256:bb","started":"2026-12-04T21:28:50.5Z"}]}
{"statuses":[{"id":"exporting layers","vertex":"sha256:bb","started":"2026-12-04T21:28:50Z","completed":"2026-12-04T21:28:52.5Z"}]}
{"statuses":[{"id":"sending tarball","vertex":"sha256:bb","started":"2026-12-04T21:28:50.5Z","completed":"2026-12-04T21:28:53.5Z"}]}
{"vertexes":[{"digest":"sha256:bb","name":"exporting to oci image format","started":"2026-12-04T21:28:50Z","completed":"2026-12-04T21:28:54Z"}]}
`

func TestParseProgress(t *testing.T) {
	var bt buildTimes
	if err := bt.parse([]byte(progressLog)); err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time { t, _ := time.Parse(time.RFC3339Nano, "2026-12-04T21:28:"+s+"Z"); return t }
	want := buildTimes{Layers: 2500 * time.Millisecond, Exporter: 4 * time.Second, Tarball: 3 * time.Second, Compress: 2,
		layersStart: at("50"), layersEnd: at("52.5"), exporterStart: at("50"), exporterEnd: at("54")}
	if bt != want {
		t.Errorf("parsed %+v, want %+v", bt, want)
	}
	if err := new(buildTimes).parse([]byte(`{"vertexes":[]}`)); err == nil {
		t.Error("progress without an exporter accepted")
	}
}

func TestSpreadAndFloor(t *testing.T) {
	if s := spreadOf([]float64{3, 1, 2, 10}); s != (spread{1, 2.5, 10}) {
		t.Errorf("spread %+v", s)
	}
	f := floors{Tar: time.Second, SHA: time.Second, Gzip: stage{CPU: 4 * time.Second, SHA: time.Second},
		GzipLade: stage{CPU: 5 * time.Second, SHA: time.Second}, Gzip1: stage{CPU: time.Second, SHA: 2 * time.Second}}
	if got := f.For("gzip", 0); got != 4*time.Second {
		t.Errorf("gzip floor %s, want 4s (8s of CPU with lade's encoder over 2 cores)", got)
	}
	if got := f.PgzipFor(); got != 3500*time.Millisecond {
		t.Errorf("pgzip floor %s, want 3.5s (7s of CPU over 2 cores)", got)
	}
	if got := f.For("gzip", 1); got != 2500*time.Millisecond {
		t.Errorf("gzip level 1 floor %s, want 2.5s", got)
	}
	if got := f.For("gzip", 9); got != 0 {
		t.Errorf("gzip level 9 floor %s, want none", got)
	}
	if got := f.For("uncompressed", 0); got != time.Second {
		t.Errorf("uncompressed floor %s, want 1s", got)
	}
}
