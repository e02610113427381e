package push

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestPushTarget(t *testing.T) {
	root := digest.FromString("root")
	other := digest.FromString("other")
	for _, tc := range []struct {
		ref      string
		byDigest bool
		want     string
		wantErr  string
	}{
		{"localhost:5000/a/b:v1", false, "localhost:5000/a/b:v1@" + root.String(), ""},
		{"localhost:5000/a/b", false, "localhost:5000/a/b:latest@" + root.String(), ""},
		{"busybox", false, "docker.io/library/busybox:latest@" + root.String(), ""},
		{"localhost:5000/a@" + root.String(), false, "localhost:5000/a@" + root.String(), ""},
		{"localhost:5000/a:v1@" + root.String(), false, "localhost:5000/a:v1@" + root.String(), ""},
		{"localhost:5000/a", true, "localhost:5000/a@" + root.String(), ""},
		{"localhost:5000/a@" + root.String(), true, "localhost:5000/a@" + root.String(), ""},
		{"localhost:5000/a:v1", true, "", "has a tag"},
		{"localhost:5000/a@" + other.String(), false, "", "names digest"},
		{"Not A Ref", false, "", "parse reference"},
	} {
		got, err := pushTarget(tc.ref, root, tc.byDigest)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("pushTarget(%q, %v): %v, want error %q", tc.ref, tc.byDigest, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got.ref != tc.want {
			t.Errorf("pushTarget(%q, %v) = %q, %v; want %q", tc.ref, tc.byDigest, got.ref, err, tc.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		opts    Options
		wantErr string
	}{
		{Options{}, ""},
		{Options{Concurrency: 8, MaxAttempts: 1, Insecure: true, CAFile: "/x"}, ""},
		{Options{Concurrency: -1}, "concurrency"},
		{Options{MaxAttempts: -1}, "max attempts"},
		{Options{RetryDelay: -1}, "retry delay"},
		{Options{HTTPClient: http.DefaultClient, CAFile: "/x"}, "CA file"},
	} {
		err := tc.opts.Validate()
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.opts, err, tc.wantErr)
		}
	}
	d := Options{}.withDefaults()
	if d.Concurrency != DefaultConcurrency || d.MaxAttempts != DefaultMaxAttempts || d.RetryDelay != DefaultRetryDelay || d.Progress == nil {
		t.Errorf("defaults: %+v", d)
	}
	if err := Push(context.Background(), nil, ocispec.Descriptor{}, "x", Options{Concurrency: -1}); err == nil {
		t.Error("Push accepted invalid options")
	}
	if _, err := Pull(context.Background(), "x", nil, Options{MaxAttempts: -1}); err == nil {
		t.Error("Pull accepted invalid options")
	}
}

// dag is a test DAG: children by digest.
type dag map[digest.Digest][]ocispec.Descriptor

// vertex returns a descriptor for name.
func vertex(name string) ocispec.Descriptor {
	return ocispec.Descriptor{Digest: digest.FromString(name), Annotations: map[string]string{"n": name}}
}

func TestGraphChildrenFirstOnce(t *testing.T) {
	shared := vertex("shared")
	a, b := vertex("a"), vertex("b")
	root := vertex("root")
	d := dag{root.Digest: {a, b}, a.Digest: {shared, vertex("a1")}, b.Digest: {shared}}
	var mu sync.Mutex
	var order []string
	g := &graph{
		children: func(_ context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			return d[desc.Digest], nil
		},
		visit: func(_ context.Context, desc ocispec.Descriptor) error {
			mu.Lock()
			order = append(order, desc.Annotations["n"])
			mu.Unlock()
			return nil
		},
	}
	if err := g.walk(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	if len(order) != 5 || order[4] != "root" {
		t.Fatalf("order %v", order)
	}
	pos := func(n string) int { return slices.Index(order, n) }
	if pos("shared") > pos("a") || pos("shared") > pos("b") || pos("a1") > pos("a") {
		t.Fatalf("a parent before its child: %v", order)
	}
}

func TestGraphErrorStopsParents(t *testing.T) {
	bad, good := vertex("bad"), vertex("good")
	root := vertex("root")
	d := dag{root.Digest: {bad, good}}
	boom := errors.New("boom")
	var visitedRoot bool
	g := &graph{
		children: func(_ context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			return d[desc.Digest], nil
		},
		visit: func(_ context.Context, desc ocispec.Descriptor) error {
			switch desc.Digest {
			case bad.Digest:
				return boom
			case root.Digest:
				visitedRoot = true
			}
			return nil
		},
	}
	if err := g.walk(context.Background(), root); !errors.Is(err, boom) || visitedRoot {
		t.Fatalf("walk = %v, root visited %v", err, visitedRoot)
	}
}

// TestGraphReportsCauseNotCancellation: when a parent's child fails, a
// child it shares with another parent is canceled; the other parent,
// waiting on the shared child, must not report that cancellation ahead of
// the failure that caused it (here it would: the failing parent still
// waits for a slow child that ignores the cancellation).
func TestGraphReportsCauseNotCancellation(t *testing.T) {
	shared, bad, slow := vertex("shared"), vertex("bad"), vertex("slow")
	a, b, root := vertex("a"), vertex("b"), vertex("root")
	d := dag{root.Digest: {a, b}, a.Digest: {shared, bad, slow}, b.Digest: {shared}}
	unauthorized := errors.New("401 Unauthorized")
	started := make(chan struct{})
	g := &graph{
		children: func(_ context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			if desc.Digest == b.Digest {
				<-started // a walks the shared child, under its own context
			}
			return d[desc.Digest], nil
		},
		visit: func(ctx context.Context, desc ocispec.Descriptor) error {
			switch desc.Digest {
			case shared.Digest:
				close(started)
				<-ctx.Done()
				return ctx.Err()
			case bad.Digest:
				<-started
				return unauthorized
			case slow.Digest:
				time.Sleep(100 * time.Millisecond)
			}
			return nil
		},
	}
	if err := g.walk(context.Background(), root); !errors.Is(err, unauthorized) {
		t.Fatalf("walk = %v, want the failure that canceled the rest (%v)", err, unauthorized)
	}
}

func TestParseChildren(t *testing.T) {
	cfg := `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest.FromString("c").String() + `","size":1}`
	layer := `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + digest.FromString("l").String() + `","size":2}`
	foreign := `{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"` + digest.FromString("f").String() + `","size":3}`
	manifest := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest}
	kids, err := parseChildren(manifest, []byte(`{"config":`+cfg+`,"layers":[`+layer+`,`+foreign+`]}`))
	if err != nil || len(kids) != 2 || kids[0].Size != 1 || kids[1].Size != 2 {
		t.Fatalf("manifest children %v, %v", kids, err)
	}
	for _, bad := range []string{`{`, `{"layers":[]}`, `{"config":{"digest":"nope","size":1}}`} {
		if _, err := parseChildren(manifest, []byte(bad)); err == nil {
			t.Errorf("parseChildren(%s): no error", bad)
		}
	}
	index := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex}
	kids, err = parseChildren(index, []byte(`{"manifests":[`+layer+`]}`))
	if err != nil || len(kids) != 1 {
		t.Fatalf("index children %v, %v", kids, err)
	}
}

func FuzzParseChildren(f *testing.F) {
	f.Add([]byte(`{"config":{"digest":"sha256:`+strings.Repeat("0", 64)+`","size":1},"layers":[]}`), false)
	f.Add([]byte(`{"manifests":[{"digest":"x"}]}`), true)
	f.Fuzz(func(t *testing.T, b []byte, isIndex bool) {
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest}
		if isIndex {
			desc.MediaType = ocispec.MediaTypeImageIndex
		}
		kids, err := parseChildren(desc, b)
		if err != nil {
			return
		}
		for _, k := range kids {
			if k.Digest.Validate() != nil || k.Size < 0 {
				t.Fatalf("invalid child accepted: %+v", k)
			}
		}
	})
}

// fakeFetcher serves fixed bytes for any descriptor.
type fakeFetcher []byte

// Fetch returns the bytes.
func (f fakeFetcher) Fetch(context.Context, ocispec.Descriptor) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(f)), nil
}

func TestFetchBytesVerifies(t *testing.T) {
	want := []byte(`{"manifests":[]}`)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(want), Size: int64(len(want))}
	for name, served := range map[string][]byte{
		"right":      want,
		"tampered":   []byte(`{"manifests":{}}`),
		"short":      want[:5],
		"long":       append(slices.Clone(want), ' '),
		"tamperedSz": []byte(`{"manifests":[] }`),
	} {
		j := &pullJob{fetcher: fakeFetcher(served)}
		b, err := j.fetchBytes(context.Background(), desc)
		if name == "right" {
			if err != nil || !bytes.Equal(b, want) {
				t.Errorf("%s: %q, %v", name, b, err)
			}
		} else if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
