// Package transfer copies images between the places lade knows: its
// embedded store, OCI layout directories (oci:DIR[:TAG]), OCI layout tar
// files (oci-archive:FILE[:TAG]), docker archives (docker-archive:FILE[:REF])
// and registries (docker://REF), as `skopeo copy` and `crane copy` do.
//
// The data path: the source is opened as a content.Provider and a root
// descriptor without reading any layer (a registry is asked for the root
// only, a layout or tar file is indexed in place, a docker archive is
// imported into the store first because its manifests must be
// synthesized); the root is narrowed to the platforms asked for; then the
// destination's writer pulls each blob it lacks from the provider, children
// before parents. Blobs already at the destination are not read (the
// store's and a layout's are checked by digest, a registry answers HEAD),
// blobs on the same registry are mounted across repositories, and every
// blob read is verified against its digest and size. Registry names are
// resolved with package registries: short names, aliases, mirrors,
// insecure and blocked registries as in containers-registries.conf(5).
//
// The package does not import BuildKit.
package transfer

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Kind is the kind of place an image reference names.
type Kind int

// The kinds of image reference.
const (
	// KindStore is an image name in lade's embedded store.
	KindStore Kind = iota
	// KindOCI is an OCI layout directory.
	KindOCI
	// KindOCIArchive is an OCI layout tar file.
	KindOCIArchive
	// KindDockerArchive is a `docker save` tar file.
	KindDockerArchive
	// KindRegistry is an image in a registry.
	KindRegistry
)

// Ref is a parsed image reference.
type Ref struct {
	// Kind says where the image is.
	Kind Kind
	// Path is the directory or file of layouts and archives.
	Path string
	// Name is the tag of a layout, the image name in an archive, store or
	// registry; it may be empty for layouts and archives.
	Name string
}

// String returns the reference in the form Parse reads.
func (r Ref) String() string {
	withName := func(prefix string) string {
		if r.Name == "" {
			return prefix + r.Path
		}
		return prefix + r.Path + ":" + r.Name
	}
	switch r.Kind {
	case KindOCI:
		return withName("oci:")
	case KindOCIArchive:
		return withName("oci-archive:")
	case KindDockerArchive:
		return withName("docker-archive:")
	case KindRegistry:
		return "docker://" + r.Name
	}
	return r.Name
}

// Parse reads an image reference: oci:DIR[:TAG], oci-archive:FILE[:TAG],
// docker-archive:FILE[:REF], docker://REF, or else a store image name
// ("docker:TAG" is the store's image "docker"). For layouts the last ":"
// outside a path element starts the tag; for docker archives, as for
// skopeo, the first ":" starts the image reference.
func Parse(s string) (Ref, error) {
	if s == "" {
		return Ref{}, fmt.Errorf("empty image reference: give a store name, oci:DIR, oci-archive:FILE, docker-archive:FILE or docker://REF")
	}
	scheme, rest, ok := strings.Cut(s, ":")
	if ok {
		kinds := map[string]Kind{"oci": KindOCI, "oci-archive": KindOCIArchive, "docker-archive": KindDockerArchive}
		if k, known := kinds[scheme]; known {
			path, name := splitTag(rest)
			if k == KindDockerArchive {
				// As skopeo: docker-archive:PATH[:DOCKER-REFERENCE].
				path, name, _ = strings.Cut(rest, ":")
			}
			if path == "" {
				return Ref{}, fmt.Errorf("image reference %q names no path", s)
			}
			return Ref{Kind: k, Path: path, Name: name}, nil
		}
		if name, isReg := strings.CutPrefix(rest, "//"); scheme == "docker" && isReg {
			if name == "" {
				return Ref{}, fmt.Errorf("image reference %q names no image", s)
			}
			return Ref{Kind: KindRegistry, Name: name}, nil
		}
	}
	if strings.Contains(s, "://") {
		return Ref{}, fmt.Errorf("image reference %q: unknown transport (use oci:, oci-archive:, docker-archive: or docker://)", s)
	}
	return Ref{Kind: KindStore, Name: s}, nil
}

// splitTag splits "path:tag"; only a colon inside the last path element
// starts a tag.
func splitTag(s string) (string, string) {
	i := strings.LastIndex(s, ":")
	if i < 0 || strings.ContainsRune(s[i+1:], filepath.Separator) {
		return s, ""
	}
	return s[:i], s[i+1:]
}
