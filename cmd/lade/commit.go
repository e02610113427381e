package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/commit"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/containerd"
	"github.com/lade-build/lade/exporter/unpack"
	"github.com/lade-build/lade/imagestore"
	"github.com/lade-build/lade/internal/attrs"
	"github.com/lade-build/lade/progress"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v3"
)

func commitCommand() *cli.Command {
	return &cli.Command{
		Name:      "commit",
		Usage:     "commit a root filesystem directory on top of a base image, as docker commit does",
		ArgsUsage: "NAME",
		Description: `The new image is the base's layers, reused as they are, plus one layer holding
the changes of --rootfs against the unpacked base (whiteouts for deletions).
The config is the base's with --change instructions applied; the history gets
one entry with --author, --message (comment) and created-by (the changes, or
"lade commit"). A rootfs without changes gives no layer and an empty_layer
history entry.

Examples:
  lade commit --base app:1 --rootfs ./rootfs -m "add config" -c 'ENV MODE=prod' app:2
  lade commit --base app:1 --rootfs ./rootfs --unpack ./run/rootfs app:2
  lade commit --base app:1 --rootfs ./rootfs --containerd 'containerd:///run/containerd/containerd.sock?namespace=default' app:2`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "base", Usage: "base `IMAGE`: a store name, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE or docker://REF (default: none)"},
			&cli.StringFlag{Name: "rootfs", Usage: "root filesystem `DIR` to commit", Required: true},
			&cli.StringFlag{Name: "author", Aliases: []string{"a"}, Usage: "author `NAME` of the history entry and the config (default: the base's)"},
			&cli.StringFlag{Name: "message", Aliases: []string{"m"}, Usage: "history comment `TEXT`"},
			&cli.StringSliceFlag{Name: "change", Aliases: []string{"c"}, Usage: "apply a Dockerfile `INSTRUCTION` to the config: " + strings.Join(commit.Instructions, ", ") + " (repeatable)"},
			&cli.StringFlag{Name: "created-by", Usage: "history created_by `TEXT` (default: the changes, or \"lade commit\")"},
			&cli.StringFlag{Name: "platform", Usage: "`OS/ARCH[/VARIANT]` of the base to use when it is an index (default: this machine's)"},
			&cli.StringFlag{Name: "format", Usage: "media types: oci or docker", Value: "oci"},
			&cli.StringFlag{Name: "compression", Usage: "compression of the new layer: gzip, gzip-compat, zstd, zstd:chunked (zstd with a table of contents, for podman's partial pulls) or uncompressed", Value: string(blobs.Gzip)},
			&cli.BoolFlag{Name: "soci", Usage: "give the image a zTOC per gzip layer and a SOCI index (SOCI index manifest v2), built while the layer is compressed"},
			&cli.Int64Flag{Name: "soci-span-size", Usage: "zTOC span size in `BYTES` (default 4 MiB)"},
			&cli.Int64Flag{Name: "soci-min-layer-size", Usage: "layers smaller than `BYTES` get no zTOC (default 10 MiB; 0: every layer)"},
			&cli.StringFlag{Name: "source-date-epoch", Usage: "clamp created times to `SECONDS` since 1970", Sources: cli.EnvVars("SOURCE_DATE_EPOCH")},
			&cli.StringFlag{Name: "unpack", Usage: "also unpack the new image into `DIR` (empty or missing), ready to run"},
			&cli.StringFlag{Name: "containerd", Usage: "also store the image in containerd: `URL` containerd://SOCKET[?namespace=NS][&snapshotter=S][&unpack=false]"},
			&cli.StringFlag{Name: "metadata-file", Usage: "write the result (digests, per-layer metadata, warnings) as JSON to `FILE`"},
			progressFlag,
		},
		Action: runCommit,
	}
}

// commitRequest is a parsed lade commit command line.
type commitRequest struct {
	name, base, rootfs, unpackDir, metadataFile string
	opts                                        commit.Options
	containerd                                  *containerd.Target
}

// commitOutput is what --metadata-file receives.
type commitOutput struct {
	Name       string             `json:"name"`
	Result     commit.Result      `json:"result"`
	Containerd *containerd.Result `json:"containerd,omitempty"`
}

func runCommit(ctx context.Context, c *cli.Command) error {
	req, err := parseCommit(c)
	if err != nil {
		return err
	}
	var out commitOutput
	err = withStore(ctx, c, func(s *imagestore.Store, pw progress.Writer) (err error) {
		req.opts.Progress, req.opts.Cache, req.opts.Locker = pw, s.BlobCache(), s.Locker()
		out, err = commitImage(ctx, s, req, c)
		return err
	})
	if err != nil {
		return err
	}
	for _, w := range out.Result.Warnings {
		fmt.Fprintln(os.Stderr, "lade: warning: "+w)
	}
	fmt.Println(out.Result.Descriptor.Digest)
	if req.metadataFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(req.metadataFile, append(b, '\n'))
}

// parseCommit checks the command line before any work.
func parseCommit(c *cli.Command) (commitRequest, error) {
	if c.Args().Len() != 1 {
		return commitRequest{}, errors.New("commit takes one NAME for the new image")
	}
	name, err := imagestore.NormalizeName(c.Args().First())
	if err != nil {
		return commitRequest{}, err
	}
	req := commitRequest{name: name, base: c.String("base"), rootfs: c.String("rootfs"),
		unpackDir: c.String("unpack"), metadataFile: c.String("metadata-file")}
	o := commit.Options{
		Author: c.String("author"), Message: c.String("message"), Changes: c.StringSlice("change"),
		CreatedBy: c.String("created-by"), NoSameOwner: os.Geteuid() != 0,
	}
	if _, err := commit.ParseChanges(o.Changes); err != nil {
		return req, fmt.Errorf("--change: %w", err)
	}
	if p := c.String("platform"); p != "" {
		plat, err := exporter.ParsePlatform(p)
		if err != nil {
			return req, fmt.Errorf("--platform: %w", err)
		}
		o.Platform = &plat
	}
	switch c.String("format") {
	case "oci":
	case "docker":
		o.Docker = true
	default:
		return req, fmt.Errorf("--format %q: use oci or docker", c.String("format"))
	}
	t, err := blobs.ParseType(c.String("compression"))
	if err != nil {
		return req, fmt.Errorf("--compression: %w", err)
	}
	o.Compression = blobs.Compression{Type: t}
	if e := c.String("source-date-epoch"); e != "" {
		if o.Epoch, err = attrs.ParseEpoch(e); err != nil {
			return req, fmt.Errorf("--source-date-epoch: %w", err)
		}
	}
	setSoci(c, &o)
	if err := (exporter.Options{Docker: o.Docker, Compression: o.Compression, Epoch: o.Epoch,
		Soci: o.Soci, SociSpanSize: o.SociSpanSize, SociMinLayerSize: o.SociMinLayerSize}).Validate(); err != nil {
		return req, err
	}
	if u := c.String("containerd"); u != "" {
		t, err := containerd.ParseURL(u)
		if err != nil {
			return req, fmt.Errorf("--containerd: %w", err)
		}
		req.containerd = &t
	}
	if req.unpackDir != "" {
		if ents, err := os.ReadDir(req.unpackDir); err == nil && len(ents) > 0 {
			return req, fmt.Errorf("--unpack %s: directory is not empty", req.unpackDir)
		}
	}
	req.opts = o
	return req, nil
}

// commitImage commits, names the image and delivers it to --unpack and
// --containerd, all under one lease.
func commitImage(ctx context.Context, s *imagestore.Store, req commitRequest, c *cli.Command) (commitOutput, error) {
	out := commitOutput{Name: req.name}
	lctx, release, err := s.WithLease(ctx)
	if err != nil {
		return out, err
	}
	defer release(context.WithoutCancel(ctx))
	var base ocispec.Descriptor
	if req.base != "" {
		reg, err := registryOptions(c)
		if err != nil {
			return out, err
		}
		if base, err = resolveImage(lctx, s, req.base, reg); err != nil {
			return out, fmt.Errorf("base %s: %w", req.base, err)
		}
	}
	if out.Result, err = commit.Commit(lctx, s.Content(), base, req.rootfs, req.opts); err != nil {
		return out, err
	}
	root := out.Result.Descriptor
	if err := s.SetImage(lctx, req.name, root); err != nil {
		return out, err
	}
	progress.OneOff(req.opts.Progress, "name:"+req.name, "naming to "+req.name, nil)
	if req.unpackDir != "" {
		task := progress.Start(req.opts.Progress, "unpack:"+req.unpackDir, "unpacking to "+req.unpackDir, 0)
		err := unpack.Unpack(lctx, s.Content(), root, req.unpackDir, unpack.Options{NoSameOwner: req.opts.NoSameOwner})
		task.Done("", err)
		if err != nil {
			return out, fmt.Errorf("--unpack: %w", err)
		}
	}
	if req.containerd != nil {
		p := out.Result.Platforms[0].Platform
		res, err := containerd.Export(lctx, s.Content(), root, *req.containerd, containerd.Options{Names: []string{req.name}, Platform: &p, Progress: req.opts.Progress})
		if err != nil {
			return out, err
		}
		out.Containerd = &res
	}
	return out, nil
}
