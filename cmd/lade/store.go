package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/imagestore"
	"github.com/lade-build/lade/internal/attrs"
	"github.com/lade-build/lade/progress"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v3"
)

// imagesCommand is lade images.
func imagesCommand() *cli.Command {
	return &cli.Command{
		Name:  "images",
		Usage: "list the images in the store",
		Action: func(ctx context.Context, c *cli.Command) error {
			s, err := openStore(ctx, c)
			if err != nil {
				return err
			}
			defer s.Close()
			imgs, err := s.ListImages(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDIGEST\tTYPE\tCREATED")
			for _, img := range imgs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", img.Name, img.Target.Digest, kind(img.Target.MediaType), img.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
}

// kind names a root media type in lade images.
func kind(mt string) string {
	if images.IsIndexType(mt) {
		return "index"
	}
	return "manifest"
}

// inspected is what lade inspect prints.
type inspected struct {
	Name      string              `json:"name"`
	Digest    digest.Digest       `json:"digest"`
	MediaType string              `json:"mediaType"`
	Images    []inspectedPlatform `json:"images"`
}

type inspectedPlatform struct {
	Platform string             `json:"platform"`
	Manifest ocispec.Descriptor `json:"manifest"`
	Config   ocispec.Image      `json:"config"`
	Layers   []inspectedLayer   `json:"layers"`
}

type inspectedLayer struct {
	Digest    digest.Digest `json:"digest"`
	DiffID    digest.Digest `json:"diffID"`
	Size      int64         `json:"size"`
	MediaType string        `json:"mediaType"`
	// ZstdChunkedTOC is the digest of a zstd:chunked layer's table of
	// contents (its manifest-checksum annotation): the layer can be pulled
	// partially.
	ZstdChunkedTOC digest.Digest `json:"zstdChunkedTOC,omitempty"`
	// Ztoc and ZtocSpans: the layer's zTOC in the image's SOCI index.
	Ztoc      digest.Digest `json:"ztoc,omitempty"`
	ZtocSpans int           `json:"ztocSpans,omitempty"`
}

// inspectCommand is lade inspect.
func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show an image's manifests, configs and layers as JSON",
		ArgsUsage: "IMAGE",
		Action: func(ctx context.Context, c *cli.Command) error {
			if c.Args().Len() != 1 {
				return errors.New("inspect takes one IMAGE name")
			}
			s, err := openStore(ctx, c)
			if err != nil {
				return err
			}
			defer s.Close()
			img, err := s.GetImage(ctx, c.Args().First())
			if err != nil {
				return err
			}
			out := inspected{Name: img.Name, Digest: img.Target.Digest, MediaType: img.Target.MediaType}
			mfsts := []ocispec.Descriptor{img.Target}
			if images.IsIndexType(img.Target.MediaType) {
				var idx ocispec.Index
				if err := readJSON(ctx, s.Content(), img.Target, &idx); err != nil {
					return err
				}
				mfsts = idx.Manifests
			}
			for _, d := range mfsts {
				if !images.IsManifestType(d.MediaType) || d.ArtifactType != "" {
					continue // a SOCI index is no image
				}
				p, err := inspectManifest(ctx, s, d)
				if err != nil {
					return err
				}
				out.Images = append(out.Images, p)
			}
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		},
	}
}

// inspectManifest describes one platform manifest of a stored image.
func inspectManifest(ctx context.Context, s *imagestore.Store, d ocispec.Descriptor) (inspectedPlatform, error) {
	var p inspectedPlatform
	var m ocispec.Manifest
	if err := readJSON(ctx, s.Content(), d, &m); err != nil {
		return p, err
	}
	if err := readJSON(ctx, s.Content(), m.Config, &p.Config); err != nil {
		return p, err
	}
	p.Manifest = d
	p.Platform = p.Config.OS + "/" + p.Config.Architecture
	if p.Config.Variant != "" {
		p.Platform += "/" + p.Config.Variant
	}
	for i, l := range m.Layers {
		il := inspectedLayer{Digest: l.Digest, Size: l.Size, MediaType: l.MediaType,
			ZstdChunkedTOC: digest.Digest(l.Annotations[blobs.AnnotationZstdChunkedTOC])}
		if i < len(p.Config.RootFS.DiffIDs) {
			il.DiffID = p.Config.RootFS.DiffIDs[i]
		}
		p.Layers = append(p.Layers, il)
	}
	return p, addZtocs(ctx, s, m, p.Layers)
}

// saveCommand is lade save.
func saveCommand() *cli.Command {
	return &cli.Command{
		Name:      "save",
		Usage:     "write a stored image to an OCI layout, a docker archive or a registry",
		ArgsUsage: "IMAGE",
		Description: `Writes the stored image as it is: attributes that make a new image
(compression, oci-mediatypes, annotations, ...) belong to lade export. An
output without name= takes IMAGE's name.

Examples:
  lade save app:1 -o type=oci,dest=app.tar
  lade save 127.0.0.1:5000/app:1 -o type=image,push=true,registry.insecure=true`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "output", Aliases: []string{"o"}, Usage: "`type=oci|docker|image,...` as for export (repeatable)"},
			progressFlag,
		},
		Action: runSave,
	}
}

// runSave delivers a stored image, as it is, to each --output. An output
// without name= gets the image's name (type=image,push=true pushes it
// there).
func runSave(ctx context.Context, c *cli.Command) error {
	if c.Args().Len() != 1 {
		return errors.New("save takes one IMAGE name")
	}
	if len(c.StringSlice("output")) == 0 {
		return errors.New("no output: add --output type=oci,dest=FILE (or type=docker,dest=FILE, type=image,name=NAME[,push=true])")
	}
	outs, err := parseOutputs(c.StringSlice("output"), nil, c.Args().First())
	if err != nil {
		return err
	}
	if err := checkDests(outs, ""); err != nil {
		return err
	}
	reg, err := registryOptions(c)
	if err != nil {
		return err
	}
	return withStore(ctx, c, func(s *imagestore.Store, pw progress.Writer) error {
		return saveAll(ctx, s, c.Args().First(), outs, pw, reg)
	})
}

// saveAll delivers the image called name to every output under one lease.
func saveAll(ctx context.Context, s *imagestore.Store, name string, outs []attrs.Output, pw progress.Writer, reg registrySettings) error {
	img, err := s.GetImage(ctx, name)
	if err != nil {
		return err
	}
	lctx, release, err := s.WithLease(ctx)
	if err != nil {
		return err
	}
	defer release(context.WithoutCancel(ctx))
	for _, o := range outs {
		if err := deliver(lctx, s, o, img.Target, nil, pw, reg); err != nil {
			return err
		}
	}
	return nil
}

// rmCommand is lade rm.
func rmCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Usage:     "remove image names from the store (content goes at the next prune)",
		ArgsUsage: "IMAGE...",
		Action: func(ctx context.Context, c *cli.Command) error {
			if c.Args().Len() == 0 {
				return errors.New("rm takes at least one IMAGE name")
			}
			s, err := openStore(ctx, c)
			if err != nil {
				return err
			}
			defer s.Close()
			for _, n := range c.Args().Slice() {
				if err := s.DeleteImage(ctx, n); err != nil {
					return err
				}
				fmt.Println("removed", n)
			}
			return nil
		},
	}
}

// pruneCommand is lade prune.
func pruneCommand() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "remove content no image references (waits for running exports)",
		Action: func(ctx context.Context, c *cli.Command) error {
			s, err := openStore(ctx, c)
			if err != nil {
				return err
			}
			defer s.Close()
			st, err := s.Prune(ctx)
			if err != nil {
				return err
			}
			fmt.Printf("removed %d blobs (%d bytes), %d blob cache entries, %d expired or orphaned leases\n", st.Blobs, st.Bytes, st.CacheEntries, st.Leases)
			return nil
		},
	}
}

// checkCommand is lade check.
func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "verify the store: every blob's digest and size, every image's content present",
		Action: func(ctx context.Context, c *cli.Command) error {
			s, err := openStore(ctx, c)
			if err != nil {
				return err
			}
			defer s.Close()
			faults, err := s.Check(ctx)
			if err != nil {
				return err
			}
			for _, f := range faults {
				fmt.Println(f.String())
			}
			if len(faults) > 0 {
				return fmt.Errorf("store has %d faults", len(faults))
			}
			fmt.Println("store is consistent")
			return nil
		},
	}
}
