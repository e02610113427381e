package buildkit

import (
	"context"
	"maps"
	"testing"

	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/lade-build/lade/blobs"
	"github.com/moby/buildkit/solver"
	bkcompression "github.com/moby/buildkit/util/compression"
	"github.com/moby/buildkit/util/contentutil"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestBaseEmptyLayersKept checks that the base image's empty layer is not
// reported empty (so lade keeps it and base and derived images share
// diffIDs) while a new empty layer is.
func TestBaseEmptyLayersKept(t *testing.T) {
	layer := func(diffID digest.Digest) ocispecs.Descriptor {
		return ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromString(diffID.String()), Size: 1,
			Annotations: map[string]string{labels.LabelUncompressed: diffID.String()}}
	}
	full := digest.FromString("full")
	pp := &platformPlan{
		remote:      &solver.Remote{Provider: contentutil.NewBuffer(), Descriptors: []ocispecs.Descriptor{layer(full), layer(blobs.EmptyTarDiffID), layer(blobs.EmptyTarDiffID)}},
		baseDiffIDs: []digest.Digest{full, blobs.EmptyTarDiffID},
	}
	if n := baseLayers(pp); n != 2 {
		t.Fatalf("base layers %d, want 2", n)
	}
	_, empty, err := ladeChain(pp)
	if err != nil {
		t.Fatal(err)
	}
	if empty[0] || empty[1] || !empty[2] {
		t.Errorf("empty %v, want only the new layer empty", empty)
	}
	pp.baseDiffIDs = []digest.Digest{digest.FromString("other")}
	if n := baseLayers(pp); n != 0 {
		t.Errorf("base layers %d for a different base, want 0", n)
	}
}

// TestLayersSpan checks the "export layers" span: a child of the caller's
// span, with buildkitd's attributes (the level only when one is set).
func TestLayersSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, parent := tp.Tracer("").Start(context.Background(), "export")
	level := 3
	for _, comp := range []bkcompression.Config{{Type: ladeZstd, Force: true, Level: &level}, {Type: ladeGzip}} {
		span, _ := startLayersSpan(ctx, comp)
		span.End()
	}
	parent.End()
	ended := rec.Ended()
	if len(ended) != 3 {
		t.Fatalf("%d spans ended, want 3", len(ended))
	}
	want := []map[attribute.Key]attribute.Value{
		{"exportLayers.compressionType": attribute.StringValue("zstd"), "exportLayers.forceCompression": attribute.BoolValue(true), "exportLayers.compressionLevel": attribute.IntValue(3)},
		{"exportLayers.compressionType": attribute.StringValue("gzip"), "exportLayers.forceCompression": attribute.BoolValue(false)},
	}
	for n, s := range ended[:2] {
		if s.Name() != "export layers" || s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %d: %q, parent %s; want \"export layers\" under %s", n, s.Name(), s.Parent().SpanID(), parent.SpanContext().SpanID())
		}
		got := map[attribute.Key]attribute.Value{}
		for _, kv := range s.Attributes() {
			got[kv.Key] = kv.Value
		}
		if !maps.EqualFunc(got, want[n], func(a, b attribute.Value) bool { return a.Emit() == b.Emit() }) {
			t.Errorf("span %d attributes %v, want %v", n, got, want[n])
		}
	}
}
