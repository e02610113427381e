// Package push moves images between a containerd content store and a
// registry: Push uploads an image (index, manifests, configs, layers) and
// Pull fetches one into a store, e.g. for --base docker://REF.
//
// Both speak the registry protocol through containerd's core/remotes/docker
// with a fresh resolver per call (a resolver reused across registries
// pushes nothing). lade adds what a build tool needs around it: children
// moved before parents, several blobs at once under a per-host bound,
// retries with exponential backoff on 5xx, 429 and connection errors
// (idempotent requests in the transport, uploads as whole blobs), plain
// HTTP for insecure or local registries, extra CAs, credentials from the
// docker config file and its credential helpers (never shown in errors or
// progress), and one progress vertex per blob with live byte counts.
//
// The package does not import BuildKit.
package push

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"
)

// Push uploads the image rooted at root (an index or a manifest) from
// provider to the registry repository named by ref, children before
// parents, and tags it.
//
// ref is a reference such as "host:port/repo:tag" (a name alone means
// ":latest"); "name@digest" must carry root's digest and pushes by digest.
// With opts.ByDigest, ref must have no tag and the image is pushed by
// digest only. Blobs the registry already has are skipped. If provider is
// also a content.InfoProvider, its "containerd.io/distribution.source.<host>"
// labels (on a blob or on its manifest) let the registry mount blobs from
// another repository instead of receiving them. Non-distributable layers
// are not pushed.
//
// Errors name the blob and quote the registry's answer; they never contain
// credentials.
func Push(ctx context.Context, provider content.Provider, root ocispec.Descriptor, ref string, opts Options) error {
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	opts = opts.withDefaults()
	t, err := pushTarget(ref, root.Digest, opts.ByDigest)
	if err != nil {
		return err
	}
	s, err := newSession(opts)
	if err != nil {
		return fmt.Errorf("push to %s: %w", t.name, err)
	}
	defer s.close()
	pusher, err := s.resolver.Pusher(ctx, t.ref)
	if err != nil {
		return fmt.Errorf("push to %s: %w", t.name, err)
	}
	j := &pushJob{session: s, provider: provider, pusher: pusher, name: t.name, host: t.host,
		sem: semaphore.NewWeighted(int64(opts.Concurrency))}
	if ip, ok := provider.(content.InfoProvider); ok {
		j.info = ip
	}
	g := &graph{children: j.children, visit: j.push}
	return s.scrub(g.walk(ctx, root))
}

// target is where Push sends an image.
type target struct {
	// ref is the containerd reference: "name:tag@root" (children go by
	// digest, the root by tag) or "name@root" (everything by digest).
	ref string
	// name is the repository, for messages.
	name string
	// host is the registry host of name.
	host string
}

// pushTarget turns a user reference into the containerd reference to push
// root to.
func pushTarget(ref string, root digest.Digest, byDigest bool) (target, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return target{}, fmt.Errorf("push: parse reference %q: %w", ref, err)
	}
	name, host := named.Name(), reference.Domain(named)
	canonical, hasDigest := named.(reference.Canonical)
	if hasDigest && canonical.Digest() != root {
		return target{}, fmt.Errorf("push: reference %q names digest %s but the image is %s", ref, canonical.Digest(), root)
	}
	tagged, hasTag := named.(reference.Tagged)
	switch {
	case byDigest && hasTag:
		return target{}, fmt.Errorf("push: reference %q has a tag but push by digest was asked: drop the tag", ref)
	case byDigest || (hasDigest && !hasTag):
		return target{ref: name + "@" + root.String(), name: name, host: host}, nil
	case hasTag:
		return target{ref: name + ":" + tagged.Tag() + "@" + root.String(), name: name, host: host}, nil
	}
	return target{ref: name + ":latest@" + root.String(), name: name, host: host}, nil
}

// pushJob is one Push call's walk.
type pushJob struct {
	*session
	provider content.Provider
	info     content.InfoProvider // nil when provider has no labels
	pusher   remotes.Pusher
	name     string
	host     string
	sem      *semaphore.Weighted
}

// children lists the distributable children of an index or manifest,
// annotated with the distribution sources of the child and of desc.
func (j *pushJob) children(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if !images.IsManifestType(desc.MediaType) && !images.IsIndexType(desc.MediaType) {
		return nil, nil
	}
	kids, err := images.Children(ctx, j.provider, desc)
	if err != nil {
		return nil, fmt.Errorf("push %s: read children: %w", describe(desc), err)
	}
	parent, err := j.sources(ctx, desc)
	if err != nil {
		return nil, err
	}
	out := make([]ocispec.Descriptor, 0, len(kids))
	for _, kid := range kids {
		if images.IsNonDistributable(kid.MediaType) {
			continue
		}
		own, err := j.sources(ctx, kid)
		if err != nil {
			return nil, err
		}
		for _, src := range []map[string]string{own, parent} {
			for k, v := range src {
				if _, has := kid.Annotations[k]; has {
					continue
				}
				if kid.Annotations == nil {
					kid.Annotations = map[string]string{}
				}
				kid.Annotations[k] = v
			}
		}
		out = append(out, kid)
	}
	return out, nil
}

// sources returns desc's distribution-source labels from the provider,
// none when it has no labels or does not know desc.
func (j *pushJob) sources(ctx context.Context, desc ocispec.Descriptor) (map[string]string, error) {
	if j.info == nil {
		return nil, nil
	}
	info, err := j.info.Info(ctx, desc.Digest)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("push %s: read labels: %w", describe(desc), err)
	}
	var out map[string]string
	for k, v := range info.Labels {
		if strings.HasPrefix(k, labels.LabelDistributionSource+".") {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out, nil
}

// push uploads one blob (its children are already there), retrying the
// whole upload on transient failures, and reports it as a progress vertex.
func (j *pushJob) push(ctx context.Context, desc ocispec.Descriptor) error {
	if err := j.sem.Acquire(ctx, 1); err != nil {
		return err
	}
	defer j.sem.Release(1)
	task := startTask(j.opts.Progress, "push", desc)
	m := &meter{task: task}
	status, err := retry(ctx, j.opts.MaxAttempts, j.opts.RetryDelay, func(ctx context.Context) (string, error) {
		return j.pushOnce(ctx, desc, m)
	})
	if err != nil {
		err = j.explainAuth(err, j.host)
		err = j.scrub(fmt.Errorf("push %s to %s: %w", describe(desc), j.name, err))
		task.Done("", err)
		return err
	}
	task.Done(status, nil)
	return nil
}

// pushOnce makes one attempt at uploading desc and returns its status.
func (j *pushJob) pushOnce(ctx context.Context, desc ocispec.Descriptor, m *meter) (string, error) {
	m.set(0)
	cw, err := j.pusher.Push(ctx, desc)
	if errdefs.IsAlreadyExists(err) {
		st, err := j.tracker.GetStatus(remotes.MakeRefKey(ctx, desc))
		if err == nil && st.MountedFrom != "" {
			return StatusMounted, nil
		}
		return StatusExists, nil
	}
	if err != nil {
		return "", err
	}
	defer cw.Close()
	ra, err := j.provider.ReaderAt(ctx, desc)
	if err != nil {
		return "", fmt.Errorf("read from store: %w", err)
	}
	defer ra.Close()
	r := &verifiedReader{r: &meteredReader{r: io.NewSectionReader(ra, 0, desc.Size), m: m}, ra: ra, desc: desc,
		d: desc.Digest.Algorithm().Digester()}
	if err := content.Copy(ctx, cw, r, desc.Size, desc.Digest); err != nil {
		return "", err
	}
	return StatusPushed, nil
}
