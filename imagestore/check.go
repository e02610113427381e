package imagestore

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FaultKind classifies a Fault.
type FaultKind string

// Kinds of Fault.
const (
	// FaultCorrupt: a blob's bytes do not match its digest or size.
	FaultCorrupt FaultKind = "corrupt"
	// FaultMissing: a blob is recorded (or referenced by an image) but its
	// file is gone.
	FaultMissing FaultKind = "missing"
	// FaultImage: an image's tree cannot be read (unparsable manifest or
	// index).
	FaultImage FaultKind = "image"
	// FaultIngest: an unfinished ingest. It may belong to an export running
	// now; left by a dead process, Prune removes it once its lease or its
	// 24h expiry is gone.
	FaultIngest FaultKind = "ingest"
	// FaultLease: a lease is held. It may belong to an export running now;
	// one left by a dead process expires after LeaseExpiry and Prune
	// deletes it.
	FaultLease FaultKind = "lease"
)

// Fault is one problem found by Check.
type Fault struct {
	// Kind says what is wrong.
	Kind FaultKind
	// Digest is the blob concerned, if any.
	Digest digest.Digest
	// Name is the image concerned (FaultMissing, FaultImage) or the ingest
	// ref (FaultIngest).
	Name string
	// Message explains the fault for people.
	Message string
}

// String renders the fault on one line.
func (f Fault) String() string {
	s := string(f.Kind)
	if f.Name != "" {
		s += " " + f.Name
	}
	if f.Digest != "" {
		s += " " + f.Digest.String()
	}
	return s + ": " + f.Message
}

// Check verifies the Store: every blob is re-read and its digest and size
// compared, every image's tree (index -> manifests -> config and layers) must
// be present and sound, and unfinished ingests are reported. The error is
// for failures to run the check; problems found are Faults, in the order
// blobs, images, ingests, leases. Check reads every byte of the store.
func (s *Store) Check(ctx context.Context) ([]Fault, error) {
	ctx = ns(ctx)
	faults, bad, err := s.checkBlobs(ctx)
	if err != nil {
		return nil, err
	}
	imgFaults, err := s.checkImages(ctx, bad)
	if err != nil {
		return nil, err
	}
	faults = append(faults, imgFaults...)
	statuses, err := s.content.ListStatuses(ctx)
	if err != nil {
		return nil, fmt.Errorf("check: list ingests: %w", err)
	}
	for _, st := range statuses {
		faults = append(faults, Fault{Kind: FaultIngest, Digest: st.Expected, Name: st.Ref,
			Message: fmt.Sprintf("unfinished ingest, %d of %d bytes, last updated %s",
				st.Offset, st.Total, st.UpdatedAt.UTC().Format("2006-01-02T15:04:05Z"))})
	}
	ls, err := s.leases.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("check: list leases: %w", err)
	}
	for _, l := range ls {
		msg := "lease held since " + l.CreatedAt.UTC().Format("2006-01-02T15:04:05Z") + " (an export running now, or one that died: it expires and prune removes it)"
		if pid, gone := ownerGone(l); gone {
			msg = "lease left since " + l.CreatedAt.UTC().Format("2006-01-02T15:04:05Z") + " by process " + pid + ", which is gone: lade prune removes it and its ingests"
		}
		faults = append(faults, Fault{Kind: FaultLease, Name: l.ID, Message: msg})
	}
	return faults, nil
}

// checkBlobs verifies every recorded blob and returns the faults and the
// faulty digests.
func (s *Store) checkBlobs(ctx context.Context) ([]Fault, map[digest.Digest]FaultKind, error) {
	var infos []content.Info
	if err := s.content.Walk(ctx, func(info content.Info) error {
		infos = append(infos, info)
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("check: walk content: %w", err)
	}
	var faults []Fault
	bad := map[digest.Digest]FaultKind{}
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		f, err := s.verifyBlob(ctx, info)
		if err != nil {
			return nil, nil, err
		}
		if f != nil {
			faults = append(faults, *f)
			bad[info.Digest] = f.Kind
		}
	}
	return faults, bad, nil
}

// verifyBlob re-reads one blob. It returns a Fault for a missing or corrupt
// blob and an error only when the check itself fails.
func (s *Store) verifyBlob(ctx context.Context, info content.Info) (*Fault, error) {
	desc := ocispec.Descriptor{Digest: info.Digest, Size: info.Size}
	ra, err := s.content.ReaderAt(ctx, desc)
	if errdefs.IsNotFound(err) {
		return &Fault{Kind: FaultMissing, Digest: info.Digest, Message: "blob file is missing"}, nil
	} else if err != nil {
		return nil, fmt.Errorf("check: open %s: %w", info.Digest, err)
	}
	defer ra.Close()
	if ra.Size() != info.Size {
		return &Fault{Kind: FaultCorrupt, Digest: info.Digest,
			Message: fmt.Sprintf("file size %d, recorded size %d", ra.Size(), info.Size)}, nil
	}
	v := info.Digest.Algorithm().Digester()
	n, err := io.Copy(v.Hash(), io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		return &Fault{Kind: FaultCorrupt, Digest: info.Digest,
			Message: fmt.Sprintf("read failed after %d bytes: %v", n, err)}, nil
	}
	if got := v.Digest(); got != info.Digest {
		return &Fault{Kind: FaultCorrupt, Digest: info.Digest,
			Message: fmt.Sprintf("content digest is %s", got)}, nil
	}
	return nil, nil
}

// checkImages walks every image's tree. bad holds blobs already found
// faulty, so a tree is not read through them.
func (s *Store) checkImages(ctx context.Context, bad map[digest.Digest]FaultKind) ([]Fault, error) {
	imgs, err := s.images.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("check: list images: %w", err)
	}
	var faults []Fault
	for _, img := range imgs {
		handler := images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			f := s.checkRef(ctx, img.Name, desc, bad)
			if f != nil {
				faults = append(faults, *f)
				return nil, images.ErrSkipDesc
			}
			children, err := images.Children(ctx, s.content, desc)
			if err != nil {
				faults = append(faults, Fault{Kind: FaultImage, Name: img.Name, Digest: desc.Digest,
					Message: fmt.Sprintf("read %s: %v", desc.MediaType, err)})
				return nil, images.ErrSkipDesc
			}
			return children, nil
		})
		if err := images.Walk(ctx, handler, img.Target); err != nil {
			return nil, fmt.Errorf("check: walk image %s: %w", img.Name, err)
		}
	}
	return faults, nil
}

// checkRef returns a fault when image name references desc but the blob is
// missing, faulty, or of another size.
func (s *Store) checkRef(ctx context.Context, name string, desc ocispec.Descriptor, bad map[digest.Digest]FaultKind) *Fault {
	if kind, ok := bad[desc.Digest]; ok {
		return &Fault{Kind: kind, Name: name, Digest: desc.Digest,
			Message: fmt.Sprintf("image references a %s blob (%s)", kind, desc.MediaType)}
	}
	info, err := s.content.Info(ctx, desc.Digest)
	if err != nil {
		msg := fmt.Sprintf("image references a blob not in the store (%s)", desc.MediaType)
		if !errdefs.IsNotFound(err) {
			msg = fmt.Sprintf("look up referenced blob: %v", err)
		}
		return &Fault{Kind: FaultMissing, Name: name, Digest: desc.Digest, Message: msg}
	}
	if info.Size != desc.Size {
		return &Fault{Kind: FaultImage, Name: name, Digest: desc.Digest,
			Message: fmt.Sprintf("descriptor size %d, blob size %d", desc.Size, info.Size)}
	}
	return nil
}
