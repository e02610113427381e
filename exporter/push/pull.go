package push

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/internal/writeback"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"
)

// maxManifestSize bounds an index or manifest read into memory.
const maxManifestSize = 8 << 20

// Store is where Pull writes: an ingester (blobs are written atomically
// and committed with their expected digest) that can say which blobs it
// already has and drop an ingest that cannot complete. containerd's local
// and metadata content stores are Stores.
type Store interface {
	content.Ingester
	content.InfoProvider
	// Abort drops the partial ingest under ref; Pull calls it when a
	// fetched blob fails verification, so a later Pull starts afresh.
	Abort(ctx context.Context, ref string) error
}

// Pull fetches the whole image named by ref (an index with every platform,
// or a single manifest, their configs and layers) into store and returns
// the root descriptor. ref is a reference such as "host:port/repo:tag" or
// "repo@sha256:..."; a name alone means ":latest".
//
// Every blob is verified against its digest and size. Blobs are committed
// children first: a manifest or index lands in the store only after all of
// its children did, so the root is there only once the image is complete.
// Blobs already in store are not fetched. New blobs get the label
// "containerd.io/distribution.source.<host>=<repo>" (so a later Push to
// the same registry can mount them) and manifests and indexes get
// containerd's gc.ref labels for their children; stores without labels
// ignore them. Pulled content is protected from garbage collection only
// by whatever lease ctx carries.
func Pull(ctx context.Context, ref string, store Store, opts Options) (ocispec.Descriptor, error) {
	if err := opts.Validate(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pull: %w", err)
	}
	opts = opts.withDefaults()
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pull: parse reference %q: %w", ref, err)
	}
	named = reference.TagNameOnly(named)
	s, err := newSession(opts)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pull %s: %w", named, err)
	}
	defer s.close()
	name, root, err := s.resolver.Resolve(ctx, named.String())
	if err != nil {
		err = s.explainAuth(err, reference.Domain(named))
		return ocispec.Descriptor{}, s.scrub(fmt.Errorf("pull %s: resolve: %w", named, err))
	}
	fetcher, err := s.resolver.Fetcher(ctx, name)
	if err != nil {
		return ocispec.Descriptor{}, s.scrub(fmt.Errorf("pull %s: %w", named, err))
	}
	j := &pullJob{session: s, store: store, fetcher: fetcher, name: named.Name(),
		source: sourceLabel(named), sem: semaphore.NewWeighted(int64(opts.Concurrency)),
		parsed: map[digest.Digest]parsedManifest{}}
	g := &graph{children: j.children, visit: j.commit}
	if err := g.walk(ctx, root); err != nil {
		return ocispec.Descriptor{}, s.scrub(err)
	}
	return root, nil
}

// sourceLabel returns the distribution-source label for blobs pulled from
// named, keyed like containerd's (host without port), or nil if invalid.
func sourceLabel(named reference.Named) map[string]string {
	u, err := url.Parse("dummy://" + reference.Domain(named))
	if err != nil {
		return nil
	}
	key := labels.LabelDistributionSource + "." + u.Hostname()
	value := reference.Path(named)
	if labels.Validate(key, value) != nil {
		return nil
	}
	return map[string]string{key: value}
}

// pullJob is one Pull call's walk.
type pullJob struct {
	*session
	store   Store
	fetcher remotes.Fetcher
	name    string
	source  map[string]string
	sem     *semaphore.Weighted

	mu     sync.Mutex
	parsed map[digest.Digest]parsedManifest
}

// parsedManifest is a fetched, verified index or manifest awaiting commit.
type parsedManifest struct {
	data     []byte
	children []ocispec.Descriptor
}

// children fetches an index or manifest into memory, verifies it and
// lists its children; other blobs have none.
func (j *pullJob) children(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if desc.MediaType == images.MediaTypeDockerSchema1Manifest {
		return nil, fmt.Errorf("pull %s from %s: Docker schema 1 manifests are not supported", describe(desc), j.name)
	}
	if !images.IsManifestType(desc.MediaType) && !images.IsIndexType(desc.MediaType) {
		return nil, nil
	}
	if desc.Size > maxManifestSize {
		return nil, fmt.Errorf("pull %s from %s: %d bytes is over the %d-byte limit for manifests", describe(desc), j.name, desc.Size, maxManifestSize)
	}
	if err := j.sem.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	defer j.sem.Release(1)
	b, err := retry(ctx, j.opts.MaxAttempts, j.opts.RetryDelay, func(ctx context.Context) ([]byte, error) {
		return j.fetchBytes(ctx, desc)
	})
	if err != nil {
		return nil, j.scrub(fmt.Errorf("pull %s from %s: %w", describe(desc), j.name, err))
	}
	kids, err := parseChildren(desc, b)
	if err != nil {
		return nil, fmt.Errorf("pull %s from %s: %w", describe(desc), j.name, err)
	}
	j.mu.Lock()
	j.parsed[desc.Digest] = parsedManifest{data: b, children: kids}
	j.mu.Unlock()
	return kids, nil
}

// fetchBytes fetches a small blob and checks its size and digest.
func (j *pullJob) fetchBytes(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	rc, err := j.fetcher.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, desc.Size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != desc.Size {
		return nil, fmt.Errorf("got %d bytes, want %d: %w", len(b), desc.Size, cache.ErrSizeMismatch)
	}
	if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
		return nil, fmt.Errorf("content has digest %s: %w", got, cache.ErrDigestMismatch)
	}
	return b, nil
}

// parseChildren lists the distributable children of an index (its
// manifests) or a manifest (config and layers).
func parseChildren(desc ocispec.Descriptor, b []byte) ([]ocispec.Descriptor, error) {
	var m struct {
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	var kids []ocispec.Descriptor
	if images.IsIndexType(desc.MediaType) {
		kids = m.Manifests
	} else {
		if m.Config == nil {
			return nil, fmt.Errorf("manifest has no config")
		}
		kids = append([]ocispec.Descriptor{*m.Config}, m.Layers...)
	}
	out := kids[:0]
	for _, k := range kids {
		if err := k.Digest.Validate(); err != nil || k.Size < 0 {
			return nil, fmt.Errorf("invalid child descriptor %q (%d bytes)", k.Digest, k.Size)
		}
		if !images.IsNonDistributable(k.MediaType) {
			out = append(out, k)
		}
	}
	return out, nil
}

// commit writes desc into the store once its children are there: a
// fetched manifest from memory, any other blob streamed from the registry.
func (j *pullJob) commit(ctx context.Context, desc ocispec.Descriptor) error {
	j.mu.Lock()
	pm, isManifest := j.parsed[desc.Digest]
	delete(j.parsed, desc.Digest)
	j.mu.Unlock()
	if isManifest {
		task := startTask(j.opts.Progress, "pull", desc)
		err := content.WriteBlob(ctx, j.store, remotes.MakeRefKey(ctx, desc), bytes.NewReader(pm.data), desc,
			content.WithLabels(j.labels(pm.children)))
		if err != nil {
			err = fmt.Errorf("pull %s from %s: write: %w", describe(desc), j.name, err)
		}
		task.Add(int64(len(pm.data)))
		task.Done(StatusPulled, err)
		return err
	}
	return j.fetchBlob(ctx, desc)
}

// labels returns the labels of a manifest or index with children: the
// distribution source and containerd's gc.ref label per child.
func (j *pullJob) labels(children []ocispec.Descriptor) map[string]string {
	out := map[string]string{}
	for k, v := range j.source {
		out[k] = v
	}
	seen := map[string]int{}
	for _, ch := range children {
		for _, key := range images.ChildGCLabels(ch) {
			idx := seen[key]
			seen[key] = idx + 1
			switch {
			case strings.HasSuffix(key, ".sha256."):
				key += ch.Digest.Encoded()[:12]
			case idx > 0 || strings.HasSuffix(key, "."):
				key += strconv.Itoa(idx)
			}
			out[key] = ch.Digest.String()
		}
	}
	return out
}

// fetchBlob streams one blob into the store unless it is there already,
// retrying the whole fetch on transient failures.
func (j *pullJob) fetchBlob(ctx context.Context, desc ocispec.Descriptor) error {
	if err := j.sem.Acquire(ctx, 1); err != nil {
		return err
	}
	defer j.sem.Release(1)
	task := startTask(j.opts.Progress, "pull", desc)
	if _, err := j.store.Info(ctx, desc.Digest); err == nil {
		task.Done(StatusExists, nil)
		return nil
	}
	m := &meter{task: task}
	status, err := retry(ctx, j.opts.MaxAttempts, j.opts.RetryDelay, func(ctx context.Context) (string, error) {
		return j.fetchOnce(ctx, desc, m)
	})
	if err != nil {
		// Keep nothing of a blob that failed for good (a digest mismatch
		// would otherwise be resumed, and fail, forever).
		_ = j.store.Abort(context.WithoutCancel(ctx), remotes.MakeRefKey(ctx, desc))
		err = j.scrub(fmt.Errorf("pull %s from %s: %w", describe(desc), j.name, err))
	}
	task.Done(status, err)
	return err
}

// fetchOnce makes one attempt at streaming desc into the store, resuming a
// partial ingest of an earlier attempt, and returns its status.
func (j *pullJob) fetchOnce(ctx context.Context, desc ocispec.Descriptor, m *meter) (string, error) {
	cw, err := content.OpenWriter(ctx, j.store, content.WithRef(remotes.MakeRefKey(ctx, desc)), content.WithDescriptor(desc))
	if errdefs.IsAlreadyExists(err) {
		return StatusExists, nil
	}
	if err != nil {
		return "", fmt.Errorf("open store writer: %w", err)
	}
	cw = writeback.Wrap(cw, 0)
	defer cw.Close()
	st, err := cw.Status()
	if err != nil {
		return "", fmt.Errorf("store writer status: %w", err)
	}
	m.set(st.Offset)
	rc, err := j.fetcher.Fetch(ctx, desc)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	err = content.Copy(ctx, &meteredWriter{Writer: cw, m: m}, rc, desc.Size, desc.Digest, content.WithLabels(j.source))
	if errdefs.IsAlreadyExists(err) {
		return StatusExists, nil
	}
	if err != nil {
		return "", err
	}
	return StatusPulled, nil
}
