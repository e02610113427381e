package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/imagestore"
	"github.com/lade-build/lade/internal/attrs"
	"github.com/lade-build/lade/progress"
	"github.com/urfave/cli/v3"
)

// exportCommand is lade export.
func exportCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "platform", Usage: "`OS/ARCH[/VARIANT]` of the image (default: this machine's)"},
		&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "multi-platform export `SPEC` (YAML or JSON), instead of LAYER arguments"},
		&cli.StringSliceFlag{Name: "output", Aliases: []string{"o"}, Usage: "where the image goes, buildctl style: `type=image|oci|docker,k=v,...` (repeatable)"},
		&cli.StringFlag{Name: "base", Usage: "put the layers on top of `IMAGE`: a store name, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE or docker://REF"},
		&cli.StringSliceFlag{Name: "annotation", Usage: "manifest annotation `KEY=VALUE` on every output (repeatable)"},
		&cli.StringFlag{Name: "metadata-file", Usage: "write the result (digests, per-layer metadata) as JSON to `FILE`"},
		progressFlag,
	}
	return &cli.Command{
		Name:      "export",
		Usage:     "export directories and layer tarballs as an image",
		ArgsUsage: "LAYER...",
		Description: `Each LAYER, bottom first, is a directory holding a full root filesystem (its
layer is the diff against the previous directory: whiteouts for deletions) or
a layer tarball (plain, gzip or zstd). With -f SPEC, any number of platforms.

Outputs (--output, repeatable):
  type=image,name=REPO[:TAG][,push=true][,registry.insecure=true]
      into the embedded store (--root), and with push=true to the registry
  type=oci,dest=FILE            an OCI layout tar (tar=false,dest=DIR: a directory)
  type=docker,dest=FILE         a docker-load-able archive (several platforms allowed)
Shared attributes: compression=gzip|gzip-compat|zstd|zstd:chunked|uncompressed,
compression-level=N, force-compression, oci-mediatypes=true|false,
source-date-epoch=SECONDS (default: $SOURCE_DATE_EPOCH), rewrite-timestamp,
keep-empty-layers, repair-history, index, annotation[-LEVEL][[PLATFORM]].KEY=V,
soci=true (a zTOC per gzip layer, built while it is compressed, packaged as
a SOCI-enabled image) with soci-span-size=BYTES (4 MiB) and
soci-min-layer-size=BYTES (10 MiB; 0: every layer).

Examples:
  lade export -o type=image,name=hello examples/hello
  lade export --platform linux/arm64 --cmd '["/app"]' -o type=oci,dest=app.tar rootfs/ app/
  lade export -f spec.yaml -o type=image,name=127.0.0.1:5000/app,push=true,registry.insecure=true`,
		Flags:  append(append(flags, sociFlags...), configFlags...),
		Action: runExport,
	}
}

// runExport reads the inputs and outputs, exports, and writes the
// metadata file.
func runExport(ctx context.Context, c *cli.Command) error {
	inputs, err := exportInputs(c)
	if err != nil {
		return err
	}
	outs, err := parseOutputs(withSociFlags(c, c.StringSlice("output")), c.StringSlice("annotation"), "")
	if err != nil {
		return err
	}
	if err := checkDests(outs, c.String("metadata-file")); err != nil {
		return err
	}
	edits, err := readConfigEdits(c)
	if err != nil {
		return err
	}
	reg, err := registryOptions(c)
	if err != nil {
		return err
	}
	var results []outputResult
	err = withStore(ctx, c, func(s *imagestore.Store, pw progress.Writer) (err error) {
		results, err = exportAll(ctx, s, inputs, edits, outs, time.Now(), pw, reg)
		return err
	})
	if err != nil {
		return err
	}
	return writeMetadata(c.String("metadata-file"), results)
}

// exportAll commits the source once per output and delivers each result,
// all under one lease so nothing is collected half-way. Every output is
// created at now: the same inputs and options give the same image.
func exportAll(ctx context.Context, s *imagestore.Store, inputs []platformInput, edits configEdits, outs []attrs.Output, now time.Time, pw progress.Writer, reg registrySettings) ([]outputResult, error) {
	lctx, release, err := s.WithLease(ctx)
	if err != nil {
		return nil, err
	}
	defer release(context.WithoutCancel(ctx))
	src, err := buildSource(lctx, s, inputs, edits, now, reg)
	if err != nil {
		return nil, err
	}
	w := exporter.NewImageWriter(s.Content())
	var results []outputResult
	for _, o := range outs {
		opts := o.Options
		opts.Progress = pw
		opts.Cache = s.BlobCache()
		opts.Locker = s.Locker()
		src.Annotations = o.Annotations
		res, err := w.Commit(lctx, src, opts)
		if err != nil {
			return nil, err
		}
		if err := deliver(lctx, s, o, res.Descriptor, &res.Created, pw, reg); err != nil {
			return nil, err
		}
		results = append(results, outputResult{Output: describeOutput(o), Result: res})
	}
	return results, nil
}

// exportOnlyKeys are output attributes that shape a new image: lade save
// writes a stored image as it is, so it refuses them rather than ignore
// them.
var exportOnlyKeys = []string{
	"compression", "compression-level", "force-compression", "oci-mediatypes",
	"rewrite-timestamp", "keep-empty-layers", "repair-history", "index",
	"soci", "soci-span-size", "soci-min-layer-size",
}

// parseOutputs parses every --output, adding --annotation and the
// SOURCE_DATE_EPOCH environment variable where the output sets none. With
// saveName set (lade save), export-only attributes are errors and an
// output without name= gets saveName.
func parseOutputs(specs, annotations []string, saveName string) ([]attrs.Output, error) {
	if len(specs) == 0 {
		return nil, errors.New("no output: add --output type=image,name=NAME (or type=oci,dest=FILE, type=docker,dest=FILE)")
	}
	var outs []attrs.Output
	for _, spec := range specs {
		m, err := attrs.ParseCSV(spec)
		if err != nil {
			return nil, fmt.Errorf("--output: %w", err)
		}
		if err := addAnnotations(m, annotations); err != nil {
			return nil, err
		}
		if _, set := m["source-date-epoch"]; !set {
			if v, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok && v != "" {
				m["source-date-epoch"] = v
			}
		}
		if saveName != "" {
			if err := saveDefaults(m, saveName); err != nil {
				return nil, fmt.Errorf("--output %s: %w", spec, err)
			}
		}
		o, err := attrs.ParseOutput(m)
		if err != nil {
			return nil, fmt.Errorf("--output %s: %w", spec, err)
		}
		outs = append(outs, o)
	}
	return outs, nil
}

// addAnnotations adds the --annotation KEY=VALUE pairs the output does not
// set itself.
func addAnnotations(m map[string]string, annotations []string) error {
	for _, a := range annotations {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return fmt.Errorf("--annotation %q: use KEY=VALUE", a)
		}
		if _, set := m["annotation."+k]; !set {
			m["annotation."+k] = v
		}
	}
	return nil
}

// saveDefaults refuses export-only attributes and names the output after
// the saved image when it has no name=.
func saveDefaults(m map[string]string, name string) error {
	for k := range m {
		if slices.Contains(exportOnlyKeys, k) || strings.HasPrefix(k, "annotation") {
			return fmt.Errorf("%s only applies to lade export: save writes the stored image as it is", k)
		}
	}
	if _, set := m["name"]; !set {
		m["name"] = name
	}
	return nil
}

// outputResult is one output's entry in the metadata file.
type outputResult struct {
	Output string          `json:"output"`
	Result exporter.Result `json:"result"`
}

// describeOutput names an output in the metadata file.
func describeOutput(o attrs.Output) string {
	switch o.Type {
	case attrs.TypeImage:
		return "image " + strings.Join(o.Names, ",")
	default:
		return o.Type + " " + o.Dest
	}
}

// writeMetadata writes the results as JSON to path ("" writes nothing).
func writeMetadata(path string, results []outputResult) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}
