package manifestlist

import (
	"context"
	"fmt"
	"maps"

	"github.com/lade-build/lade/blobs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Override sets platform fields of an instance, as buildah's --os, --arch,
// --variant, --os-version and --os-features do. Empty fields leave the
// instance's value.
type Override struct {
	// Platform, when set, replaces the whole platform before the other
	// fields apply.
	Platform                             *ocispec.Platform
	OS, Architecture, Variant, OSVersion string
	OSFeatures                           []string
}

// IsSet reports whether o changes anything.
func (o Override) IsSet() bool {
	return o.Platform != nil || o.OS != "" || o.Architecture != "" || o.Variant != "" || o.OSVersion != "" || len(o.OSFeatures) > 0
}

// Apply returns p with o's fields put in.
func (o Override) Apply(p ocispec.Platform) ocispec.Platform {
	if o.Platform != nil {
		p = *o.Platform
	}
	for _, f := range []struct {
		v   string
		dst *string
	}{{o.OS, &p.OS}, {o.Architecture, &p.Architecture}, {o.Variant, &p.Variant}, {o.OSVersion, &p.OSVersion}} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	if len(o.OSFeatures) > 0 {
		p.OSFeatures = append([]string(nil), o.OSFeatures...)
	}
	return p
}

// AddOptions are the optional inputs of AddImage. The zero value adds the
// host platform's manifest of an index, or a manifest, as it is.
type AddOptions struct {
	// Select picks the manifests of an index.
	Select Select
	// Override sets platform fields of the added instance; it needs a
	// single instance.
	Override Override
	// Annotations are set on each added instance (OCI lists only).
	Annotations map[string]string
	// Compressions add, per instance, a variant with its layers
	// recompressed (see Variant), added after it; OCI lists only.
	Compressions []blobs.Compression
	// Variant are the options of the variants' recompression.
	Variant VariantOptions
}

// AddImage adds the manifests of the image rooted at root in store (see
// Instances), converted to Docker manifests for a Docker list, with their
// variants, and returns the descriptors added.
func (l *List) AddImage(ctx context.Context, store Store, root ocispec.Descriptor, opts AddOptions) ([]ocispec.Descriptor, error) {
	if len(opts.Compressions) > 0 && l.Format() == Docker {
		return nil, fmt.Errorf("compression variants need an OCI list (their annotation marks them): use format oci")
	}
	insts, err := Instances(ctx, store, root, opts.Select)
	if err != nil {
		return nil, err
	}
	if len(insts) > 1 && opts.Override.IsSet() {
		return nil, fmt.Errorf("a platform override sets one instance's platform, but the image gives %d", len(insts))
	}
	var added []ocispec.Descriptor
	for _, inst := range insts {
		if l.Format() == Docker {
			if inst, err = ToDocker(ctx, store, inst); err != nil {
				return nil, err
			}
		}
		if opts.Override.IsSet() {
			p := opts.Override.Apply(*inst.Platform)
			inst.Platform = &p
		}
		if len(opts.Annotations) > 0 {
			inst.Annotations = maps.Clone(opts.Annotations)
		}
		if err := l.Add(inst); err != nil {
			return nil, err
		}
		added = append(added, inst)
		for _, comp := range opts.Compressions {
			v, err := Variant(ctx, store, inst, comp, opts.Variant)
			if err != nil {
				return nil, err
			}
			for k, val := range inst.Annotations {
				if _, set := v.Annotations[k]; !set {
					if v.Annotations == nil {
						v.Annotations = map[string]string{}
					}
					v.Annotations[k] = val
				}
			}
			if err := l.Add(v); err != nil {
				return nil, err
			}
			added = append(added, v)
		}
	}
	return added, nil
}
