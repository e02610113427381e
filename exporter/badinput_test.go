package exporter_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/exportertest"
)

func TestCommitBadInput(t *testing.T) {
	lvl := 42
	_, _, app := chain("g-")
	one := func(p, cfg string) exporter.Source {
		var c []byte
		if cfg != "" {
			c = []byte(cfg)
		}
		return exporter.Source{Platforms: []exporter.PlatformSource{{Platform: p, Ref: app, Config: c}}}
	}
	cases := []struct {
		name string
		src  exporter.Source
		opts exporter.Options
		want string
	}{
		{"invalid platform", one("linux/amd 64", ""), exporter.Options{}, `invalid platform "linux/amd 64"`},
		{"garbage config", one("", "{not json"), exporter.Options{}, "image config is not a JSON object"},
		{"null config", one("", "null"), exporter.Options{}, "invalid null image config for export"}, // stock's words
		{"surplus history", one("", `{"history":[{},{},{},{}]}`), exporter.Options{}, "4 non-empty entries but the image has 3 layers"},
		{"unknown compression", one("", ""), exporter.Options{Compression: blobs.Compression{Type: "lzma"}}, `unknown compression "lzma"`},
		{"bad level", one("", ""), exporter.Options{Compression: blobs.Compression{Type: blobs.Gzip, Level: &lvl}}, "level 42 out of range for gzip: use 0 to 9"},
		{"rewrite without epoch", one("", ""), exporter.Options{RewriteTimestamp: true}, "rewrite-timestamp needs an epoch"},
		{"no platforms", exporter.Source{}, exporter.Options{}, "nothing to export"},
		{"duplicate platform", exporter.Source{Platforms: []exporter.PlatformSource{{Platform: "linux/amd64"}, {Platform: "linux/x86_64"}}}, exporter.Options{}, "given twice"},
		{"index annotation single", exporter.Source{Platforms: []exporter.PlatformSource{{Ref: app}}, Annotations: exporter.Annotations{Index: map[string]string{"a": "b"}}}, exporter.Options{}, "index annotations given for a single-platform image"},
		{"annotation unknown platform", exporter.Source{Platforms: []exporter.PlatformSource{{Platform: "linux/amd64", Ref: app}}, Annotations: exporter.Annotations{Manifest: map[string]map[string]string{"linux/s390x": {"a": "b"}}}}, exporter.Options{}, `platform "linux/s390x"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t)
			_, err := exporter.NewImageWriter(s).Commit(context.Background(), c.src, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
			assertNoPartial(t, s)
		})
	}
}

// assertNoPartial fails if the store has an ingest in progress.
func assertNoPartial(t *testing.T, s content.Store) {
	t.Helper()
	st, err := s.ListStatuses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) > 0 {
		t.Errorf("store left with %d partial ingests: %+v", len(st), st)
	}
}

// blockingRef's diff yields some bytes, then blocks until ctx is done.
type blockingRef struct {
	exportertest.MemRef
	started chan struct{}
}

func (r *blockingRef) Layer() cache.Layer { return r }

func (r *blockingRef) Diff(ctx context.Context, _ cache.DiffOptions) (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(make([]byte, 4096))
		close(r.started)
		<-ctx.Done()
		pw.CloseWithError(ctx.Err())
	}()
	return pr, nil
}

func TestCommitCancelled(t *testing.T) {
	s := newStore(t)
	ref := &blockingRef{MemRef: exportertest.MemRef{RefID: "slow"}, started: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-ref.started; cancel() }()
	_, err := exporter.NewImageWriter(s).Commit(ctx, exporter.Source{Platforms: []exporter.PlatformSource{{Ref: ref}}}, exporter.Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	assertNoPartial(t, s)
	n := 0
	_ = s.Walk(context.Background(), func(content.Info) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d blobs committed by a cancelled export", n)
	}
}
