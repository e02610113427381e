package main

import (
	"context"
	"fmt"

	"github.com/containerd/platforms"
	"github.com/lade-build/lade/imagestore"
	"github.com/lade-build/lade/progress"
	"github.com/lade-build/lade/transfer"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v3"
)

// platformFlag is --platform for pull and copy.
var platformFlag = &cli.StringSliceFlag{
	Name:  "platform",
	Usage: "copy only this `PLATFORM` of a multi-platform image (os/arch[/variant]); repeat for several (a new index of them is written)",
}

// pullCommand is `lade pull`.
func pullCommand() *cli.Command {
	return &cli.Command{
		Name:      "pull",
		Usage:     "pull an image from a registry into the store",
		ArgsUsage: "REF",
		Description: `Pulls REF (host/path:tag, host/path@digest or a short name; a leading
docker:// is allowed) into lade's store under its fully qualified name, and
prints that name and the image digest.

Every platform of a multi-platform image is pulled unless --platform picks
some. Blobs the store already has are not downloaded again; every blob is
checked against its digest and size before it is kept, so an interrupted
pull leaves the store consistent and the next pull finishes the job.

A short name such as "debian" is resolved as podman resolves it, from
containers-registries.conf(5) (--registries-conf, else
$HOME/.config/containers/registries.conf or /etc/containers/registries.conf
with their registries.conf.d): an [aliases] entry, else each
unqualified-search-registries entry in order until one has the image. In
short-name-mode "enforcing" (the default) a name with several candidates is
an error listing them, since lade never prompts. [[registry]] tables rewrite
locations, add mirrors (tried first) and mark registries insecure or
blocked. Without any such file, Docker's rule applies
(docker.io/library/NAME:latest). Credentials come from the docker config
and its credential helpers, as for pushes.`,
		Flags: []cli.Flag{platformFlag, progressFlag},
		Action: func(ctx context.Context, c *cli.Command) error {
			if c.NArg() != 1 {
				return fmt.Errorf("pull takes one image reference, got %d arguments (see lade pull --help)", c.NArg())
			}
			src := transfer.Ref{Kind: transfer.KindRegistry, Name: c.Args().First()}
			if r, err := transfer.Parse(src.Name); err == nil && r.Kind == transfer.KindRegistry {
				src = r
			}
			return runCopy(ctx, c, src, transfer.Ref{Kind: transfer.KindStore}, len(c.StringSlice("platform")) == 0)
		},
	}
}

// copyCommand is `lade copy`.
func copyCommand() *cli.Command {
	return &cli.Command{
		Name:      "copy",
		Usage:     "copy an image between the store, OCI layouts, archives and registries",
		ArgsUsage: "SRC DST",
		Description: `Copies the image SRC to DST, each one of:
  NAME                      an image in lade's store (a destination NAME may be empty: "")
  oci:DIR[:TAG]             an OCI layout directory
  oci-archive:FILE[:TAG]    an OCI layout tar file
  docker-archive:FILE[:REF] a docker save / docker load tar file
  docker://REF              an image in a registry (short names as for lade pull)

From a multi-platform image only this host's platform is copied (as skopeo
does), unless --all copies the whole index (keeping its digest) or --platform
picks platforms. Nothing is converted: blobs, manifests and their digests
are copied as they are. Blobs already at the destination are not read (the
store and a layout check by digest, a registry answers HEAD); between two
repositories of one registry, blobs are mounted instead of uploaded; every
blob read is verified against its digest and size. Writes are atomic: an
interrupted copy leaves no half-written archive and no unverified blob in
the store, and copying again reads only what is missing.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Usage: "copy every platform of a multi-platform image, and its index"},
			platformFlag, progressFlag,
		},
		Action: func(ctx context.Context, c *cli.Command) error {
			if c.NArg() != 2 {
				return fmt.Errorf("copy takes SRC and DST, got %d arguments (see lade copy --help)", c.NArg())
			}
			src, err := transfer.Parse(c.Args().Get(0))
			if err != nil {
				return err
			}
			dst := transfer.Ref{Kind: transfer.KindStore}
			if d := c.Args().Get(1); d != "" {
				if dst, err = transfer.Parse(d); err != nil {
					return err
				}
			}
			return runCopy(ctx, c, src, dst, c.Bool("all"))
		},
	}
}

// runCopy copies src to dst with the command's flags and prints the
// destination name and the digest copied.
func runCopy(ctx context.Context, c *cli.Command, src, dst transfer.Ref, all bool) error {
	var plats []ocispec.Platform
	for _, p := range c.StringSlice("platform") {
		pl, err := platforms.Parse(p)
		if err != nil {
			return fmt.Errorf("--platform %q: %w", p, err)
		}
		plats = append(plats, platforms.Normalize(pl))
	}
	if all && len(plats) > 0 && c.Bool("all") {
		return fmt.Errorf("--all and --platform exclude each other: --all copies every platform")
	}
	reg, err := registryOptions(c)
	if err != nil {
		return err
	}
	var res transfer.Result
	err = withStore(ctx, c, func(s *imagestore.Store, pw progress.Writer) (err error) {
		opts := reg.transferOptions(pw)
		opts.All, opts.Platforms = all, plats
		res, err = transfer.Copy(ctx, s, src, dst, opts)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n", res.Dest, res.Root.Digest)
	return nil
}
