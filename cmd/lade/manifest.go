package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/exporter/containerd"
	"github.com/lade-build/lade/exporter/push"
	"github.com/lade-build/lade/imagestore"
	"github.com/lade-build/lade/manifestlist"
	"github.com/lade-build/lade/progress"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v3"
)

// instanceFlags choose and describe the instances lade manifest add and
// create take from an image.
var instanceFlags = []cli.Flag{
	&cli.BoolFlag{Name: "all", Usage: "add every image manifest of an index (default: the one for --platform or this machine)"},
	&cli.StringSliceFlag{Name: "add-compression", Usage: "also add, per instance, a variant with layers recompressed to `TYPE` (zstd or zstd:chunked; repeatable)"},
}

// platformFlags override the platform recorded for an instance.
var platformFlags = []cli.Flag{
	&cli.StringFlag{Name: "platform", Usage: "`OS/ARCH[/VARIANT]`: picks the manifest of an index, or sets the platform of a manifest (default: read from the config)"},
	&cli.StringFlag{Name: "os", Usage: "set the instance's `OS`"},
	&cli.StringFlag{Name: "arch", Usage: "set the instance's `ARCH`itecture"},
	&cli.StringFlag{Name: "variant", Usage: "set the instance's architecture `VARIANT`"},
	&cli.StringFlag{Name: "os-version", Usage: "set the instance's os.version `VERSION`"},
	&cli.StringSliceFlag{Name: "os-features", Usage: "set the instance's os.features `FEATURE` (repeatable)"},
}

func manifestCommand() *cli.Command {
	sub := []*cli.Command{
		{Name: "create", Usage: "create a manifest list, with the instances of IMAGE...", ArgsUsage: "LIST [IMAGE...]",
			Flags: append([]cli.Flag{
				&cli.StringFlag{Name: "format", Usage: "list format: oci (image index) or docker (manifest list)", Value: "oci"},
				&cli.BoolFlag{Name: "amend", Usage: "add to LIST when it exists already"},
				&cli.StringSliceFlag{Name: "annotation", Usage: "annotation `KEY=VALUE` of the list itself (repeatable)"},
				progressFlag,
			}, instanceFlags...), Action: runManifestCreate},
		{Name: "add", Usage: "add the manifests of IMAGE to a list", ArgsUsage: "LIST IMAGE",
			Flags: append(append([]cli.Flag{
				&cli.StringSliceFlag{Name: "annotation", Usage: "annotation `KEY=VALUE` of the added instances (repeatable)"},
				progressFlag,
			}, instanceFlags...), platformFlags...), Action: runManifestAdd},
		{Name: "remove", Aliases: []string{"rm"}, Usage: "remove an instance (a digest, or an image whose manifests the list holds)", ArgsUsage: "LIST INSTANCE",
			Flags: []cli.Flag{progressFlag}, Action: runManifestRemove},
		{Name: "annotate", Usage: "set annotations or the platform of an instance, or (--index) annotations of the list", ArgsUsage: "LIST [INSTANCE]",
			Flags: append([]cli.Flag{
				&cli.StringSliceFlag{Name: "annotation", Usage: "annotation `KEY=VALUE` (repeatable)"},
				&cli.BoolFlag{Name: "index", Usage: "annotate the list itself"},
				progressFlag,
			}, platformFlags[1:]...), Action: runManifestAnnotate},
		{Name: "inspect", Usage: "print the list's JSON", ArgsUsage: "LIST", Action: runManifestInspect},
		{Name: "push", Usage: "push the list and every instance to a registry (or containerd://SOCKET?namespace=NS)", ArgsUsage: "LIST [DESTINATION]",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "rm", Usage: "remove the list from the store after pushing"},
				progressFlag,
			}, Action: runManifestPush},
	}
	for _, c := range sub {
		c.DisableSliceFlagSeparator = true
		c.OnUsageError = usageError
	}
	return &cli.Command{
		Name:  "manifest",
		Usage: "create, edit and push manifest lists (OCI image indexes or Docker manifest lists)",
		Description: `Lists live in the store under their name; instances are images from the store,
oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE or docker://REF, with
their platform read from each image's config unless given.

Examples:
  lade manifest create app:1 app-amd64:1 app-arm64:1
  lade manifest add --add-compression zstd app:1 docker://registry.example/app:arm64
  lade manifest annotate --annotation org.example.k=v app:1 sha256:...
  lade manifest push app:1 registry.example/app:1`,
		Commands: sub,
	}
}

// listMode says whether a command creates the list it edits (of format,
// when name is free) and whether create may amend an existing list.
type listMode struct {
	create, amend bool
	format        manifestlist.Format
}

// withList runs edit, under a lease, on the list called name (created as
// mode says), then writes and names the result and prints its digest.
func withList(ctx context.Context, c *cli.Command, name string, mode listMode, edit func(context.Context, *imagestore.Store, *manifestlist.List, progress.Writer) error) error {
	return withStore(ctx, c, func(s *imagestore.Store, pw progress.Writer) error {
		desc, err := editList(ctx, s, name, mode, func(ctx context.Context, l *manifestlist.List) error { return edit(ctx, s, l, pw) })
		if err == nil {
			fmt.Println(desc.Digest)
		}
		return err
	})
}

// editList loads (or creates) a list, edits it, writes and names it.
func editList(ctx context.Context, s *imagestore.Store, name string, mode listMode, edit func(context.Context, *manifestlist.List) error) (ocispec.Descriptor, error) {
	lctx, release, err := s.WithLease(ctx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer release(context.WithoutCancel(ctx))
	l, _, err := loadList(lctx, s, name)
	switch {
	case mode.create && errdefs.IsNotFound(err):
		l = manifestlist.New(mode.format)
	case err != nil:
		return ocispec.Descriptor{}, err
	case mode.create && !mode.amend:
		return ocispec.Descriptor{}, fmt.Errorf("list %s exists: use lade manifest add, or create --amend", name)
	case mode.create && l.Format() != mode.format:
		return ocispec.Descriptor{}, fmt.Errorf("list %s exists with format %s, not %s", name, l.Format(), mode.format)
	}
	if err := edit(lctx, l); err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, err := l.Write(lctx, s.Content())
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, s.SetImage(lctx, name, desc)
}

// loadList reads the list called name from the store.
func loadList(ctx context.Context, s *imagestore.Store, name string) (*manifestlist.List, imagestore.Image, error) {
	img, err := s.GetImage(ctx, name)
	if err != nil {
		return nil, img, err
	}
	l, err := manifestlist.Read(ctx, s.Content(), img.Target)
	if errdefs.IsInvalidArgument(err) {
		return nil, img, fmt.Errorf("%s is a single image, not a manifest list: %w", name, errdefs.ErrFailedPrecondition)
	}
	return l, img, err
}

func runManifestCreate(ctx context.Context, c *cli.Command) error {
	if c.Args().Len() < 1 {
		return errors.New("manifest create takes a LIST name and IMAGEs")
	}
	format, err := manifestlist.ParseFormat(c.String("format"))
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	ann, err := parseKeyValues("--annotation", c.StringSlice("annotation"))
	if err != nil {
		return err
	}
	mode := listMode{create: true, format: format, amend: c.Bool("amend")}
	return withList(ctx, c, c.Args().First(), mode, func(ctx context.Context, s *imagestore.Store, l *manifestlist.List, pw progress.Writer) error {
		if err := l.AnnotateIndex(ann); err != nil {
			return err
		}
		for _, ref := range c.Args().Tail() {
			if err := addImage(ctx, c, s, l, ref, nil, pw); err != nil {
				return err
			}
		}
		return nil
	})
}

func runManifestAdd(ctx context.Context, c *cli.Command) error {
	if c.Args().Len() != 2 {
		return errors.New("manifest add takes a LIST name and one IMAGE")
	}
	ann, err := parseKeyValues("--annotation", c.StringSlice("annotation"))
	if err != nil {
		return err
	}
	return withList(ctx, c, c.Args().First(), listMode{}, func(ctx context.Context, s *imagestore.Store, l *manifestlist.List, pw progress.Writer) error {
		return addImage(ctx, c, s, l, c.Args().Get(1), ann, pw)
	})
}

// addImage adds the instances of ref, with annotations ann and their
// compression variants.
func addImage(ctx context.Context, c *cli.Command, s *imagestore.Store, l *manifestlist.List, ref string, ann map[string]string, pw progress.Writer) error {
	opts := manifestlist.AddOptions{Select: manifestlist.Select{All: c.Bool("all")}, Annotations: ann,
		Variant: manifestlist.VariantOptions{Cache: s.BlobCache(), Locker: s.Locker(), Progress: pw}}
	var err error
	for _, n := range c.StringSlice("add-compression") {
		t, err := blobs.ParseType(n)
		if err != nil {
			return fmt.Errorf("--add-compression: %w", err)
		}
		opts.Compressions = append(opts.Compressions, blobs.Compression{Type: t})
	}
	if opts.Override, err = readOverride(c); err != nil {
		return err
	}
	reg, err := registryOptions(c)
	if err != nil {
		return err
	}
	root, err := resolveImage(ctx, s, ref, reg)
	if err != nil {
		return err
	}
	if opts.Override.Platform != nil && archive.IsIndex(root.MediaType) {
		opts.Select.Platform, opts.Override.Platform = opts.Override.Platform, nil // --platform picks from an index
	}
	if _, err := l.AddImage(ctx, s.Content(), root, opts); err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	return nil
}

// readOverride reads --platform (where the command has it), --os, --arch,
// --variant, --os-version and --os-features.
func readOverride(c *cli.Command) (manifestlist.Override, error) {
	o := manifestlist.Override{OS: c.String("os"), Architecture: c.String("arch"), Variant: c.String("variant"),
		OSVersion: c.String("os-version"), OSFeatures: c.StringSlice("os-features")}
	if v := c.String("platform"); v != "" {
		p, err := exporter.ParsePlatform(v)
		if err != nil {
			return o, fmt.Errorf("--platform: %w", err)
		}
		o.Platform = &p
	}
	return o, nil
}

func runManifestRemove(ctx context.Context, c *cli.Command) error {
	if c.Args().Len() != 2 {
		return errors.New("manifest remove takes a LIST name and one INSTANCE")
	}
	return withList(ctx, c, c.Args().First(), listMode{}, func(ctx context.Context, s *imagestore.Store, l *manifestlist.List, _ progress.Writer) error {
		d, err := findInstance(ctx, c, s, l, c.Args().Get(1))
		if err != nil {
			return err
		}
		return l.Remove(d)
	})
}

func runManifestAnnotate(ctx context.Context, c *cli.Command) error {
	ann, err := parseKeyValues("--annotation", c.StringSlice("annotation"))
	if err != nil {
		return err
	}
	over, err := readOverride(c)
	if err != nil {
		return err
	}
	if c.Bool("index") {
		if c.Args().Len() != 1 || over.IsSet() {
			return errors.New("manifest annotate --index takes a LIST name and --annotation only")
		}
		return withList(ctx, c, c.Args().First(), listMode{}, func(_ context.Context, _ *imagestore.Store, l *manifestlist.List, _ progress.Writer) error {
			return l.AnnotateIndex(ann)
		})
	}
	if c.Args().Len() != 2 {
		return errors.New("manifest annotate takes a LIST name and one INSTANCE (or --index)")
	}
	return withList(ctx, c, c.Args().First(), listMode{}, func(ctx context.Context, s *imagestore.Store, l *manifestlist.List, _ progress.Writer) error {
		d, err := findInstance(ctx, c, s, l, c.Args().Get(1))
		if err != nil {
			return err
		}
		edit := manifestlist.Edit{Annotations: ann}
		if over.IsSet() {
			inst, err := l.Lookup(d)
			if err != nil {
				return err
			}
			p := over.Apply(*inst.Platform)
			edit.Platform = &p
		}
		return l.Annotate(d, edit)
	})
}

// findInstance resolves an instance argument: a digest in the list, or an
// image whose manifest the list holds.
func findInstance(ctx context.Context, c *cli.Command, s *imagestore.Store, l *manifestlist.List, arg string) (digest.Digest, error) {
	if d, err := digest.Parse(arg); err == nil {
		_, err := l.Lookup(d)
		return d, err
	}
	reg, err := registryOptions(c)
	if err != nil {
		return "", err
	}
	root, err := resolveImage(ctx, s, arg, reg)
	if err != nil {
		return "", err
	}
	insts, err := manifestlist.Instances(ctx, s.Content(), root, manifestlist.Select{All: true})
	if err != nil {
		return "", err
	}
	for _, in := range insts {
		if _, err := l.Lookup(in.Digest); err == nil {
			return in.Digest, nil
		}
	}
	return "", fmt.Errorf("the list holds no manifest of %s: %w", arg, errdefs.ErrNotFound)
}

func runManifestInspect(ctx context.Context, c *cli.Command) error {
	if c.Args().Len() != 1 {
		return errors.New("manifest inspect takes one LIST name")
	}
	s, err := openStore(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	_, img, err := loadList(ctx, s, c.Args().First())
	if err != nil {
		return err
	}
	b, err := readStored(ctx, s.Content(), img.Target)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(append(b, '\n'))
	return err
}

func runManifestPush(ctx context.Context, c *cli.Command) error {
	if n := c.Args().Len(); n != 1 && n != 2 {
		return errors.New("manifest push takes a LIST name and an optional DESTINATION")
	}
	name, dest := c.Args().First(), c.Args().Get(1)
	if dest == "" {
		dest = name
	}
	return withStore(ctx, c, func(s *imagestore.Store, pw progress.Writer) error { return pushList(ctx, c, s, name, dest, pw) })
}

// pushList sends the list and its instances to a registry or containerd,
// then removes the list with --rm.
func pushList(ctx context.Context, c *cli.Command, s *imagestore.Store, name, dest string, pw progress.Writer) error {
	_, img, err := loadList(ctx, s, name)
	if err != nil {
		return err
	}
	if strings.HasPrefix(dest, "containerd://") {
		t, err := containerd.ParseURL(dest)
		if err == nil {
			_, err = containerd.Export(ctx, s.Content(), img.Target, t, containerd.Options{Names: []string{name}, Progress: pw})
		}
		if err != nil {
			return err
		}
	} else {
		reg, err := registryOptions(c)
		if err != nil {
			return err
		}
		target, err := pushTarget(strings.TrimPrefix(dest, "docker://"), reg)
		if err != nil {
			return fmt.Errorf("push %s: %w", dest, err)
		}
		opts := reg.Options
		opts.Insecure = opts.Insecure || target.Insecure
		opts.Progress = pw
		if err := push.Push(ctx, s.Content(), img.Target, target.Ref, opts); err != nil {
			return fmt.Errorf("push %s: %w", dest, err)
		}
	}
	fmt.Println(img.Target.Digest)
	if c.Bool("rm") {
		return s.DeleteImage(ctx, name)
	}
	return nil
}

// parseKeyValues parses KEY=VALUE flag values.
func parseKeyValues(flag string, kvs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: use KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}
