package containerd

import (
	"context"
	"fmt"
	"maps"
	"os"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/internal/writeback"
	"github.com/lade-build/lade/progress"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/metadata"
)

// LeaseExpiry bounds how long the lease of an Export protects its content
// if the process dies before deleting it.
const LeaseExpiry = time.Hour

// copyConcurrency is the number of blobs copied at once.
const copyConcurrency = 4

// Options are the inputs of Export besides the image and the target.
type Options struct {
	// Names are the image names to create or update; at least one.
	// References are normalized (docker.io/library/NAME:latest), as
	// nerdctl and moby name images in containerd.
	Names []string
	// Platform is the platform unpacked from an index; nil means the
	// host's.
	Platform *ocispec.Platform
	// Labels are set on the image records; nil leaves the labels of an
	// existing record as they are.
	Labels map[string]string
	// Progress receives a vertex per blob copied; nil discards events.
	Progress progress.Writer
}

// Result says what Export did.
type Result struct {
	// Names are the image names written, normalized.
	Names []string `json:"names"`
	// Copied counts the blobs written; Present those containerd had.
	Copied  int `json:"copied"`
	Present int `json:"present"`
	// Snapshot is the chain ID of the unpacked root filesystem, "" when
	// the image was not unpacked.
	Snapshot string `json:"snapshot,omitempty"`
}

// Export copies the image rooted at root from src into the containerd
// daemon of t, names it opts.Names and, with t.Unpack, unpacks it. src is
// read digest-verified for indexes and manifests; containerd verifies every
// blob it commits. Blobs containerd already has are not copied again, but
// get the labels they miss. Every step runs under one lease, deleted at the
// end: the image records then hold the content.
func Export(ctx context.Context, src content.Provider, root ocispec.Descriptor, t Target, opts Options) (Result, error) {
	if err := t.Validate(); err != nil {
		return Result{}, err
	}
	t = t.withDefaults()
	names, err := normalizeNames(opts.Names)
	if err != nil {
		return Result{}, err
	}
	// containerd's dialer waits for a missing socket to appear: fail fast.
	if _, err := os.Stat(t.Address); err != nil {
		return Result{}, fmt.Errorf("containerd at %s: no socket (is containerd running?): %w", t.Address, err)
	}
	c, err := client.New(t.Address, client.WithDefaultNamespace(t.Namespace))
	if err != nil {
		return Result{}, fmt.Errorf("containerd at %s: %w", t.Address, err)
	}
	defer c.Close()
	// The daemon sees our namespace and our lease only, whatever the
	// caller's context carries (e.g. a lease of lade's own store).
	ctx = namespaces.WithNamespace(metadata.NewOutgoingContext(ctx, nil), t.Namespace)
	ls := c.LeasesService()
	lease, err := ls.Create(ctx, leases.WithRandomID(), leases.WithExpiration(LeaseExpiry))
	if err != nil {
		return Result{}, fmt.Errorf("containerd at %s: create lease: %w", t.Address, err)
	}
	defer func() { _ = ls.Delete(context.WithoutCancel(ctx), lease) }()
	lctx := leases.WithLease(ctx, lease.ID)
	g, err := archive.Walk(lctx, src, root)
	if err != nil {
		return Result{}, err
	}
	res := Result{Names: names}
	if res.Copied, res.Present, err = copyBlobs(lctx, src, c.ContentStore(), g, opts.Progress); err != nil {
		return res, err
	}
	for _, n := range names {
		if err := setImage(lctx, c.ImageService(), images.Image{Name: n, Target: root, Labels: opts.Labels}); err != nil {
			return res, err
		}
	}
	if t.Unpack {
		if res.Snapshot, err = unpackImage(lctx, c, names[0], root, t.Snapshotter, opts); err != nil {
			return res, err
		}
	}
	return res, nil
}

// normalizeNames parses and normalizes image names.
func normalizeNames(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("containerd export: no image name: %w", errdefs.ErrInvalidArgument)
	}
	out := make([]string, len(names))
	for i, n := range names {
		named, err := reference.ParseNormalizedNamed(n)
		if err != nil {
			return nil, fmt.Errorf("image name %q: %v: %w", n, err, errdefs.ErrInvalidArgument)
		}
		out[i] = reference.TagNameOnly(named).String()
	}
	return out, nil
}

// copyBlobs copies every blob of g into dst, children before parents (one
// height at a time, several blobs at once), and returns how many were
// copied and how many were present.
func copyBlobs(ctx context.Context, src content.Provider, dst content.Store, g *archive.Graph, pw progress.Writer) (copied, present int, err error) {
	pw = progress.OrDiscard(pw)
	info, _ := src.(content.InfoProvider)
	byHeight := map[int][]archive.Blob{}
	top := 0
	for _, b := range g.Blobs {
		byHeight[b.Height] = append(byHeight[b.Height], b)
		top = max(top, b.Height)
	}
	results := make(chan bool, len(g.Blobs))
	for h := 0; h <= top; h++ {
		eg, ectx := errgroup.WithContext(ctx)
		eg.SetLimit(copyConcurrency)
		for _, b := range byHeight[h] {
			eg.Go(func() error {
				wrote, err := copyBlob(ectx, src, info, dst, b, pw)
				results <- wrote
				return err
			})
		}
		if err := eg.Wait(); err != nil {
			return 0, 0, err
		}
	}
	close(results)
	for wrote := range results {
		if wrote {
			copied++
		} else {
			present++
		}
	}
	return copied, present, nil
}

// copyBlob copies one blob with its labels unless dst has it, in which
// case its missing labels are added. It reports whether it wrote the blob.
func copyBlob(ctx context.Context, src content.Provider, info content.InfoProvider, dst content.Store, b archive.Blob, pw progress.Writer) (bool, error) {
	desc := b.Desc
	labels := blobLabels(ctx, info, b)
	task := progress.Start(pw, "containerd:"+desc.Digest.String(), "copying "+archive.Kind(desc.MediaType)+" "+desc.Digest.String(), desc.Size)
	if have, err := dst.Info(ctx, desc.Digest); err == nil {
		err = addLabels(ctx, dst, have, labels)
		task.Done("present", err)
		return false, err
	} else if !errdefs.IsNotFound(err) {
		task.Done("", err)
		return false, fmt.Errorf("containerd: %s %s: %w", archive.Kind(desc.MediaType), desc.Digest, err)
	}
	err := writeBlob(ctx, src, dst, desc, labels)
	task.Add(desc.Size)
	task.Done("", err)
	return err == nil, err
}

// writeBlob streams desc from src into dst and commits it with labels.
func writeBlob(ctx context.Context, src content.Provider, dst content.Store, desc ocispec.Descriptor, labels map[string]string) error {
	ra, err := src.ReaderAt(ctx, desc)
	if err != nil {
		return fmt.Errorf("read %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	w, err := content.OpenWriter(ctx, dst, content.WithRef("lade-"+desc.Digest.String()), content.WithDescriptor(desc))
	if errdefs.IsAlreadyExists(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("containerd: write %s: %w", desc.Digest, err)
	}
	w = writeback.Wrap(w, 0)
	defer w.Close()
	err = content.Copy(ctx, w, content.NewReader(ra), desc.Size, desc.Digest, content.WithLabels(labels))
	if err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("containerd: write %s %s: %w", archive.Kind(desc.MediaType), desc.Digest, err)
	}
	return nil
}

// blobLabels are the labels a blob gets in containerd: GC references to its
// children (as containerd's own pull sets them) and, from the source store
// when it has labels, the uncompressed digest and distribution sources.
func blobLabels(ctx context.Context, info content.InfoProvider, b archive.Blob) map[string]string {
	labels := map[string]string{}
	if info != nil {
		if in, err := info.Info(ctx, b.Desc.Digest); err == nil {
			for k, v := range in.Labels {
				if k == "containerd.io/uncompressed" || strings.HasPrefix(k, "containerd.io/distribution.source.") {
					labels[k] = v
				}
			}
		}
	}
	maps.Copy(labels, archive.GCLabels(b.Children))
	return labels
}

// addLabels adds to a blob already in dst the labels it lacks.
func addLabels(ctx context.Context, dst content.Manager, have content.Info, labels map[string]string) error {
	var fields []string
	upd := content.Info{Digest: have.Digest, Labels: map[string]string{}}
	for k, v := range labels {
		if have.Labels[k] != v {
			upd.Labels[k] = v
			fields = append(fields, "labels."+k)
		}
	}
	if len(fields) == 0 {
		return nil
	}
	if _, err := dst.Update(ctx, upd, fields...); err != nil {
		return fmt.Errorf("containerd: label %s: %w", have.Digest, err)
	}
	return nil
}

// setImageTries bounds the create-or-update loop against concurrent
// creators and deleters of the same name.
const setImageTries = 10

// setImage creates img or points the existing record at its target (and
// its labels, when img has some).
func setImage(ctx context.Context, is images.Store, img images.Image) error {
	fields := []string{"target"}
	if img.Labels != nil {
		fields = append(fields, "labels")
	}
	var err error
	for range setImageTries {
		_, err = is.Update(ctx, img, fields...)
		if !errdefs.IsNotFound(err) {
			break
		}
		_, err = is.Create(ctx, img)
		if !errdefs.IsAlreadyExists(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("containerd: image %s: %w", img.Name, err)
	}
	return nil
}

// unpackImage unpacks the image's platform into the snapshotter and
// returns the chain ID of its root filesystem.
func unpackImage(ctx context.Context, c *client.Client, name string, root ocispec.Descriptor, snapshotter string, opts Options) (string, error) {
	p := platforms.DefaultSpec()
	if opts.Platform != nil {
		p = *opts.Platform
	}
	pw := progress.OrDiscard(opts.Progress)
	task := progress.Start(pw, "containerd-unpack:"+name, "unpacking "+name+" into "+snapshotter, 0)
	img := client.NewImageWithPlatform(c, images.Image{Name: name, Target: root}, platforms.Only(p))
	err := img.Unpack(ctx, snapshotter)
	var diffIDs []digest.Digest
	if err == nil {
		diffIDs, err = img.RootFS(ctx)
	}
	task.Done("", err)
	if err != nil {
		return "", fmt.Errorf("containerd: unpack %s for %s into %s: %w", name, platforms.Format(p), snapshotter, err)
	}
	return identity.ChainID(diffIDs).String(), nil
}
