package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/distribution/reference"
	"github.com/lade-build/lade/exporter/docker"
	"github.com/lade-build/lade/exporter/oci"
	"github.com/lade-build/lade/exporter/push"
	"github.com/lade-build/lade/imagestore"
	"github.com/lade-build/lade/internal/attrs"
	"github.com/lade-build/lade/progress"
	"github.com/lade-build/lade/registries"
	"github.com/lade-build/lade/transfer"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// deliver sends the image rooted at root to o's destination: names in the
// store and pushes (type=image), an OCI layout, or a docker archive.
// created, when set, is stamped as the OCI created annotation.
func deliver(ctx context.Context, s *imagestore.Store, o attrs.Output, root ocispec.Descriptor, created *time.Time, pw progress.Writer, reg registrySettings) error {
	switch o.Type {
	case attrs.TypeImage:
		return deliverImage(ctx, s, o, root, pw, reg)
	case attrs.TypeOCI:
		opts := oci.Options{Names: o.Names, Created: created, Epoch: o.Options.Epoch, Progress: pw}
		if !o.Tar {
			return oci.WriteLayout(ctx, s.Content(), root, o.Dest, opts)
		}
		return writeTo(o.Dest, func(w io.Writer) error { return oci.WriteTar(ctx, s.Content(), root, w, opts) })
	case attrs.TypeDocker:
		opts := docker.Options{Names: o.Names, Created: created, Epoch: o.Options.Epoch, Progress: pw}
		return writeTo(o.Dest, func(w io.Writer) error { return docker.WriteArchive(ctx, s.Content(), root, w, opts) })
	}
	return fmt.Errorf("unknown output type %q", o.Type)
}

// deliverImage names the image in the store (unless store=false) and
// pushes it to each name's registry when asked.
func deliverImage(ctx context.Context, s *imagestore.Store, o attrs.Output, root ocispec.Descriptor, pw progress.Writer, reg registrySettings) error {
	for _, n := range o.Names {
		if o.Push {
			target, err := pushTarget(n, reg)
			if err != nil {
				return fmt.Errorf("push %s: %w", n, err)
			}
			task := progress.Start(pw, "push:"+n, "pushing "+n, 0)
			err = push.Push(ctx, s.Content(), root, target.Ref, push.Options{Insecure: o.Insecure || reg.Insecure || target.Insecure, CAFile: reg.CAFile, ByDigest: o.PushByDigest, Progress: pw})
			task.Done("", err)
			if err != nil {
				return fmt.Errorf("push %s: %w", n, err)
			}
		}
		if o.Store && !o.PushByDigest {
			if err := s.SetImage(ctx, n, root); err != nil {
				return err
			}
			progress.OneOff(pw, "name:"+n, "naming to "+n, nil)
		}
	}
	if len(o.Names) == 0 && o.Store {
		name := "lade-dangling@" + root.Digest.String()
		if o.DanglingPrefix != "" {
			name = o.DanglingPrefix + "@" + root.Digest.String()
		}
		if err := s.SetImage(ctx, name, root); err != nil {
			return err
		}
		progress.OneOff(pw, "name:"+name, "naming to "+name, nil)
	}
	return nil
}

// pushTarget applies the registries configuration to a push destination:
// its [[registry]] table may rewrite the location, mark it insecure or
// block it. The name is normalized as Docker does; a tag is not added
// (a push by digest has none).
func pushTarget(name string, reg registrySettings) (registries.Source, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return registries.Source{}, fmt.Errorf("parse reference %q: %w", name, err)
	}
	return reg.Conf.PushTarget(named)
}

// writeTo writes a file atomically (temp file, fsync, rename) or to stdout
// for "-": a failed export leaves no half-written file under dest.
func writeTo(dest string, write func(io.Writer) error) error {
	if dest == "-" {
		bw := bufio.NewWriterSize(os.Stdout, 1<<20)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	return transfer.WriteFileAtomic(dest, write)
}

// writeFileAtomic writes b to path atomically.
func writeFileAtomic(path string, b []byte) error {
	return writeTo(path, func(w io.Writer) error { _, err := w.Write(b); return err })
}

// checkDests fails fast, before any layer is computed, when a destination
// cannot be written: a file output or the metadata file whose directory
// does not exist (or is not a directory), a layout directory under a
// regular file. Write errors later still leave nothing half-written.
func checkDests(outs []attrs.Output, metadataFile string) error {
	var files []string
	if metadataFile != "" {
		files = append(files, metadataFile)
	}
	for _, o := range outs {
		switch {
		case o.Dest == "" || o.Dest == "-":
		case o.Type == attrs.TypeOCI && !o.Tar:
			if err := checkLayoutDir(o.Dest); err != nil {
				return err
			}
		default:
			files = append(files, o.Dest)
		}
	}
	for _, f := range files {
		if err := checkDir(filepath.Dir(f)); err != nil {
			return fmt.Errorf("write %s: %w", f, err)
		}
	}
	return nil
}

// checkLayoutDir checks that dir is a directory, or can be created: its
// nearest existing ancestor is a directory.
func checkLayoutDir(dir string) error {
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("oci layout %s: %s is not a directory", dir, p)
			}
			return nil
		}
		if !os.IsNotExist(err) || p == filepath.Dir(p) {
			return fmt.Errorf("oci layout %s: %w", dir, err)
		}
	}
}

// checkDir checks that dir exists and is a directory.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}
