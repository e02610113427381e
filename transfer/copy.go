package transfer

import (
	"context"
	"fmt"
	"io"

	"github.com/distribution/reference"
	"github.com/lade-build/lade/exporter/docker"
	"github.com/lade-build/lade/exporter/oci"
	"github.com/lade-build/lade/exporter/push"
	"github.com/lade-build/lade/imagestore"
	"github.com/lade-build/lade/progress"
	"github.com/lade-build/lade/registries"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Result says what a Copy did.
type Result struct {
	// Source is the source as resolved (a short name's registry reference).
	Source string
	// Dest is the destination as written (a store or registry name
	// normalized).
	Dest string
	// Root is the descriptor of the image copied: the source's root, or
	// the manifest or index of the platforms picked.
	Root ocispec.Descriptor
}

// Copy copies the image src names to dst, through s when either is the
// store or the source is a docker archive. See the package comment for
// what is read and verified. A registry destination must resolve to a
// single name; a store destination without a name takes the source's
// resolved name (a registry reference) when it has one.
func Copy(ctx context.Context, s *imagestore.Store, src, dst Ref, opts Options) (Result, error) {
	ctx, release, err := s.WithLease(ctx)
	if err != nil {
		return Result{}, err
	}
	defer release(context.WithoutCancel(ctx))
	in, err := open(ctx, s, src, opts)
	if err != nil {
		return Result{}, err
	}
	defer in.close()
	p, root, err := narrow(ctx, in.provider, in.root, opts)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", in.name, err)
	}
	res := Result{Source: in.name, Root: root}
	pw := progress.OrDiscard(opts.Progress)
	switch dst.Kind {
	case KindStore:
		name := dst.Name
		if name == "" {
			name = storeName(in.name, src)
		}
		if name == "" {
			name = "lade-dangling@" + root.Digest.String()
		}
		full, err := imagestore.NormalizeName(name)
		if err != nil {
			return res, err
		}
		if err := Import(ctx, p, root, s.Content(), pw); err != nil {
			return res, err
		}
		res.Dest = full
		return res, s.SetImage(ctx, full, root)
	case KindOCI:
		res.Dest = dst.String()
		return res, oci.WriteLayout(ctx, p, root, dst.Path, oci.Options{Names: layoutNames(storeName(in.name, src), dst.Name), Progress: pw})
	case KindOCIArchive:
		res.Dest = dst.String()
		return res, WriteFileAtomic(dst.Path, func(w io.Writer) error {
			return oci.WriteTar(ctx, p, root, w, oci.Options{Names: layoutNames(storeName(in.name, src), dst.Name), Progress: pw})
		})
	case KindDockerArchive:
		res.Dest = dst.String()
		return res, WriteFileAtomic(dst.Path, func(w io.Writer) error {
			return docker.WriteArchive(ctx, p, root, w, docker.Options{Names: names(dst.Name), Progress: pw})
		})
	case KindRegistry:
		target, err := PushTarget(dst.Name, opts)
		if err != nil {
			return res, err
		}
		ro := opts.Registry
		ro.Insecure = ro.Insecure || target.Insecure
		ro.Progress = pw
		res.Dest = target.Ref
		return res, push.Push(ctx, p, root, target.Ref, ro)
	}
	return res, fmt.Errorf("image reference %s: unknown kind %d", dst, dst.Kind)
}

// names is a layout or archive name as a list (none for "").
func names(name string) []string {
	if name == "" {
		return nil
	}
	return []string{name}
}

// layoutNames is the image name an OCI layout entry tagged tag gets: the
// repository of source (the source's store name) with that tag, else
// localhost/lade-copy; tag is what org.opencontainers.image.ref.name holds.
func layoutNames(source, tag string) []string {
	if tag == "" {
		return nil
	}
	repo := "localhost/lade-copy"
	if named, err := reference.ParseNormalizedNamed(source); source != "" && err == nil {
		repo = named.Name()
	}
	return []string{repo + ":" + tag}
}

// storeName is the store name of an image copied from src without a
// destination name: a registry image keeps its resolved reference, a
// layout's or archive's its name; unnamed ones become dangling.
func storeName(resolved string, src Ref) string {
	switch {
	case src.Kind == KindRegistry || src.Kind == KindStore:
		return resolved
	case src.Name != "":
		return src.Name
	}
	return ""
}

// PushTarget resolves a registry destination name: it must stand for one
// fully qualified reference (a name, an alias, or a single search
// registry), which the registries configuration may rewrite or block.
func PushTarget(name string, opts Options) (registries.Source, error) {
	cands, err := opts.Registries.Candidates(name)
	if err != nil {
		return registries.Source{}, fmt.Errorf("destination %s: %w", name, err)
	}
	if len(cands) != 1 {
		return registries.Source{}, fmt.Errorf("destination %s may be any of %d registries in short-name-mode %s: give a fully qualified name", name, len(cands), opts.Registries.Mode)
	}
	t, err := opts.Registries.PushTarget(cands[0].Ref)
	if err != nil {
		return registries.Source{}, fmt.Errorf("destination %s: %w", name, err)
	}
	return t, nil
}

// Resolve brings the image ref names into s's content store, every
// platform of it, and returns its root descriptor without naming it: for
// a base image or a manifest list's instance. Blobs the store has are not
// read. The caller's ctx should carry a lease of s.
func Resolve(ctx context.Context, s *imagestore.Store, ref string, opts Options) (ocispec.Descriptor, error) {
	r, err := Parse(ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	in, err := open(ctx, s, r, opts)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer in.close()
	if r.Kind == KindStore || r.Kind == KindDockerArchive {
		return in.root, nil
	}
	if err := Import(ctx, in.provider, in.root, s.Content(), opts.Progress); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%s: %w", in.name, err)
	}
	return in.root, nil
}
