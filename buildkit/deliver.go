package buildkit

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/epoch"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/docker"
	"github.com/lade-build/lade/exporter/oci"
	bkexporter "github.com/moby/buildkit/exporter"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	sessioncontent "github.com/moby/buildkit/session/content"
	"github.com/moby/buildkit/session/filesync"
	"github.com/moby/buildkit/util/contentutil"
	"github.com/moby/buildkit/util/grpcerrors"
	"github.com/moby/buildkit/util/push"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
)

// deliver sends the committed image where the output asks. For a push it
// returns the finalize callback BuildKit runs after all exports.
// st is the OCI tar already streaming to the client, nil if none.
func (i *instance) deliver(ctx context.Context, p *plan, desc ocispecs.Descriptor, names []string, resp map[string]string, sid string, st *tarStream) (bkexporter.FinalizeFunc, error) {
	if i.isImage() {
		return i.deliverImage(ctx, p, desc, names, resp, sid)
	}
	return nil, i.deliverArchive(ctx, p, desc, names, resp, sid, st)
}

// deliverImage names the image in the worker's image store (when it has
// one) and prepares the push of every name.
func (i *instance) deliverImage(ctx context.Context, p *plan, desc ocispecs.Descriptor, names []string, resp map[string]string, sid string) (bkexporter.FinalizeFunc, error) {
	out := i.s.out
	canonical := out.NameCanonical
	if out.DanglingPrefix != "" && (!out.DanglingEmptyOnly || len(names) == 0) {
		if len(names) == 0 {
			canonical = false
		}
		names = append(names, out.DanglingPrefix+"@"+desc.Digest.String())
	}
	if len(names) > 0 {
		resp[exptypes.ExporterImageNameKey] = strings.Join(names, ",")
	}
	if i.e.opt.Images != nil && out.Store {
		if err := i.store(ctx, p, desc, names, canonical); err != nil {
			return nil, err
		}
	}
	if !out.Push || len(names) == 0 {
		return nil, nil
	}
	mp, ann := i.layerProvider(p)
	return func(ctx context.Context) error {
		for _, name := range names {
			err := push.Push(ctx, i.e.opt.SessionManager, sid, mp, i.e.opt.ContentStore, desc.Digest, name,
				out.Insecure, i.e.opt.RegistryHosts, out.PushByDigest, ann)
			if err != nil {
				return fmt.Errorf("failed to push %v: %w", name, err)
			}
		}
		return nil
	}, nil
}

// store creates or updates an image record per name (and name@digest with
// name-canonical), and fetches lazy layers so that the stored image is
// complete; with unpack=true it unpacks the image (unpack.go).
func (i *instance) store(ctx context.Context, p *plan, desc ocispecs.Descriptor, names []string, canonical bool) error {
	ictx := ctx
	if p.epoch != nil {
		ictx = epoch.WithSourceDateEpoch(ctx, p.epoch)
	}
	for _, name := range names {
		all := []string{name}
		if canonical && !strings.ContainsRune(name, '@') {
			all = append(all, name+"@"+desc.Digest.String())
		}
		done := oneOff(ctx, "naming to "+name)
		for _, n := range all {
			if err := i.setImage(ictx, images.Image{Name: n, Target: desc}); err != nil {
				return done(err)
			}
		}
		_ = done(nil)
	}
	if i.s.out.Unpack && len(names) > 0 {
		if err := unlazy(ctx, p); err != nil {
			return err
		}
		return i.unpackImage(ctx, p, desc, names[0])
	}
	if i.s.storeIncomplete {
		return nil
	}
	return unlazy(ctx, p)
}

// setImage updates the image record, creating it when missing.
func (i *instance) setImage(ctx context.Context, img images.Image) error {
	for {
		if _, err := i.e.opt.Images.Update(ctx, img); err == nil || !errdefs.IsNotFound(err) {
			return err
		}
		if _, err := i.e.opt.Images.Create(ctx, img); err == nil || !errdefs.IsAlreadyExists(err) {
			return err
		}
	}
}

// deliverArchive streams an OCI layout tar or a docker archive to the
// client (type=oci and type=docker), or copies the blobs into the client's
// content store (type=oci,tar=false). st, when not nil, is the OCI tar
// already streaming: it gets the rest of the image.
func (i *instance) deliverArchive(ctx context.Context, p *plan, desc ocispecs.Descriptor, names []string, resp map[string]string, sid string, st *tarStream) error {
	tagged, err := tagNames(names)
	if err != nil {
		return err
	}
	if len(tagged) > 0 {
		resp[exptypes.ExporterImageNameKey] = strings.Join(tagged, ",")
	}
	if err := unlazy(ctx, p); err != nil {
		return err
	}
	mp, _ := i.layerProvider(p)
	if st != nil {
		return st.complete(ctx, mp, desc, tagged, createdOf(p))
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	caller, err := i.e.opt.SessionManager.Get(cctx, sid, false)
	if err != nil {
		return err
	}
	if !i.s.out.Tar {
		return contentutil.CopyChain(ctx, sessioncontent.NewCallerStore(caller, "export"), mp, desc)
	}
	w, err := filesync.CopyFileWriter(ctx, resp, i.id, caller)
	if err != nil {
		return err
	}
	done := oneOff(ctx, "sending tarball")
	err = i.writeArchive(ctx, p, mp, desc, tagged, w)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if grpcerrors.Code(err) == codes.AlreadyExists {
		err = nil
	}
	return done(err)
}

// writeArchive writes the tar of the output type to w.
func (i *instance) writeArchive(ctx context.Context, p *plan, mp *contentutil.MultiProvider, desc ocispecs.Descriptor, names []string, w io.Writer) error {
	created := createdOf(p)
	pw, closePW := newBridge(ctx)
	defer closePW()
	if i.e.typ == "docker" {
		return docker.WriteArchive(ctx, mp, desc, w, docker.Options{Names: names, Created: &created, Epoch: p.epoch, Progress: pw})
	}
	return oci.WriteTar(ctx, mp, desc, w, oci.Options{Names: names, SharedTags: true, Created: &created, Epoch: p.epoch, Progress: pw})
}

// createdOf is the org.opencontainers.image.created time of an OCI or
// docker output: the epoch, else now.
func createdOf(p *plan) time.Time {
	if p.epoch != nil {
		return p.epoch.UTC()
	}
	return p.started.UTC().Truncate(time.Second)
}

// withCreated sets the created annotation on the root descriptor, as
// BuildKit's oci and docker exporters report it.
func withCreated(desc ocispecs.Descriptor, p *plan) ocispecs.Descriptor {
	a := map[string]string{}
	for k, v := range desc.Annotations {
		a[k] = v
	}
	if _, ok := a[ocispecs.AnnotationCreated]; !ok {
		a[ocispecs.AnnotationCreated] = createdOf(p).Format(time.RFC3339)
	}
	desc.Annotations = a
	return desc
}

// withPlatform sets the platform of a single-platform image on its root
// descriptor, as BuildKit's image writer returns it: the response, the
// index.json of OCI and docker tars and the image record then carry it.
func withPlatform(desc ocispecs.Descriptor, p *plan, res exporter.Result) ocispecs.Descriptor {
	if !p.index && len(res.Platforms) == 1 {
		pl := res.Platforms[0].Platform
		desc.Platform = &pl
	}
	return desc
}

// tagNames normalizes names and gives untagged ones the latest tag.
func tagNames(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		parsed, err := reference.ParseNormalizedNamed(n)
		if err != nil {
			return nil, fmt.Errorf("invalid image name %q: %w", n, err)
		}
		out = append(out, reference.TagNameOnly(parsed).String())
	}
	return out, nil
}
