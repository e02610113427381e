package main

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/commit"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/imagestore"
	"github.com/lade-build/lade/internal/attrs"
	"github.com/lade-build/lade/soci"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v3"
)

// addZtocs notes, per layer, the zTOC and span count the SOCI index named
// by manifest m lists for it (lade inspect).
func addZtocs(ctx context.Context, s *imagestore.Store, m ocispec.Manifest, layers []inspectedLayer) error {
	d, err := digest.Parse(m.Annotations[exporter.AnnotationSociIndexDigest])
	if err != nil {
		return nil
	}
	info, err := s.Content().Info(ctx, d)
	if err != nil {
		return fmt.Errorf("SOCI index %s: %w", d, err)
	}
	var idx ocispec.Manifest
	if err := readJSON(ctx, s.Content(), ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: info.Size}, &idx); err != nil {
		return err
	}
	for _, z := range idx.Layers {
		for i := range layers {
			if layers[i].Digest.String() != z.Annotations[exporter.AnnotationSociLayerDigest] {
				continue
			}
			b, err := content.ReadBlob(ctx, s.Content(), z)
			if err != nil {
				return fmt.Errorf("zTOC %s: %w", z.Digest, err)
			}
			layers[i].Ztoc = z.Digest
			layers[i].ZtocSpans, _ = soci.Spans(b)
		}
	}
	return nil
}

// setSoci copies lade commit's --soci flags into o (--soci-min-layer-size
// 0 means every layer).
func setSoci(c *cli.Command, o *commit.Options) {
	o.Soci, o.SociSpanSize = c.Bool("soci"), c.Int64("soci-span-size")
	if c.IsSet("soci-min-layer-size") {
		if o.SociMinLayerSize = c.Int64("soci-min-layer-size"); o.SociMinLayerSize == 0 {
			o.SociMinLayerSize = -1
		}
	}
}

// sociFlags are lade export's --soci flags; an output's own soci
// attributes win over them.
var sociFlags = []cli.Flag{
	&cli.BoolFlag{Name: "soci", Usage: "soci=true on every output: a zTOC per gzip layer and a SOCI index (SOCI index manifest v2)"},
	&cli.Int64Flag{Name: "soci-span-size", Usage: "soci-span-size=`BYTES` on every output (default 4 MiB)"},
	&cli.Int64Flag{Name: "soci-min-layer-size", Usage: "soci-min-layer-size=`BYTES` on every output (default 10 MiB; 0: every layer)"},
}

// withSociFlags adds the --soci flags given to each output spec that does
// not set the attribute itself.
func withSociFlags(c *cli.Command, specs []string) []string {
	out := make([]string, len(specs))
	for i, spec := range specs {
		out[i] = spec
		m, err := attrs.ParseCSV(spec)
		if err != nil {
			continue // parseOutputs reports it
		}
		on := c.Bool("soci")
		if v, set := m["soci"]; set {
			on, _ = attrs.ParseBool("soci", v)
		}
		for _, k := range []string{"soci", "soci-span-size", "soci-min-layer-size"} {
			if _, set := m[k]; set || !c.IsSet(k) || (k != "soci" && !on) {
				continue
			}
			if k == "soci" {
				out[i] += fmt.Sprintf(",soci=%t", c.Bool(k))
			} else {
				out[i] += fmt.Sprintf(",%s=%d", k, c.Int64(k))
			}
		}
	}
	return out
}
