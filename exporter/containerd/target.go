// Package containerd delivers images into a running containerd daemon, the
// destination moby and nerdctl commit into: every blob of the image is
// copied from a lade content store into containerd's content store with
// containerd's labels (GC references from each index and manifest to its
// children, the uncompressed digest of layers), the image record is created
// or updated, and, when asked, the image is unpacked into a snapshotter so
// its config carries the gc.ref.snapshot label and it runs at once. All of
// it happens under a containerd lease, so the daemon's garbage collector
// never sees half an image.
//
// It talks to the daemon with containerd's v2 Go client, which drives
// containerd 1.6 and later (the content, images, leases, snapshots and diff
// services it uses are the v1 gRPC services of every release).
//
// The package does not import BuildKit.
package containerd

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Defaults of a Target.
const (
	// DefaultAddress is containerd's default socket.
	DefaultAddress = "/run/containerd/containerd.sock"
	// DefaultNamespace is containerd's default namespace (ctr's).
	DefaultNamespace = "default"
	// DefaultSnapshotter is the snapshotter images are unpacked into.
	DefaultSnapshotter = "overlayfs"
)

// Target is a containerd daemon and where images go in it.
type Target struct {
	// Address is the daemon's gRPC socket path.
	Address string
	// Namespace holds the images; empty means DefaultNamespace.
	Namespace string
	// Snapshotter is the snapshotter to unpack into; empty means
	// DefaultSnapshotter.
	Snapshotter string
	// Unpack unpacks the image (the platform of Options.Platform) into the
	// snapshotter after storing it.
	Unpack bool
}

// ParseURL parses a containerd destination:
//
//	containerd://[SOCKET][?namespace=NS][&snapshotter=NAME][&unpack=true|false]
//
// e.g. containerd:///run/containerd/containerd.sock?namespace=k8s.io. An
// empty socket path means DefaultAddress; unpack defaults to true, so the
// image runs at once (as moby's commit does).
func ParseURL(s string) (Target, error) {
	rest, ok := strings.CutPrefix(s, "containerd://")
	if !ok {
		return Target{}, fmt.Errorf("containerd destination %q: use containerd://SOCKET[?namespace=NS]", s)
	}
	u, err := url.Parse("containerd://" + rest)
	if err != nil {
		return Target{}, fmt.Errorf("containerd destination %q: %w", s, err)
	}
	if u.Host != "" {
		return Target{}, fmt.Errorf("containerd destination %q: give a socket path (containerd:///path/to/containerd.sock), not a host", s)
	}
	t := Target{Address: u.Path, Namespace: DefaultNamespace, Snapshotter: DefaultSnapshotter, Unpack: true}
	if t.Address == "" {
		t.Address = DefaultAddress
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "namespace":
			t.Namespace = v
		case "snapshotter":
			t.Snapshotter = v
		case "unpack":
			if t.Unpack, err = strconv.ParseBool(v); err != nil {
				return Target{}, fmt.Errorf("containerd destination %q: unpack=%q: use true or false", s, v)
			}
		default:
			return Target{}, fmt.Errorf("containerd destination %q: unknown parameter %q: use namespace, snapshotter or unpack", s, k)
		}
	}
	return t, t.Validate()
}

// Validate checks the target on its own.
func (t Target) Validate() error {
	if t.Address == "" {
		return fmt.Errorf("containerd target: no socket address")
	}
	for _, part := range []struct{ name, v string }{{"namespace", t.Namespace}, {"snapshotter", t.Snapshotter}} {
		if strings.ContainsAny(part.v, "/ \t\n") {
			return fmt.Errorf("containerd target: %s %q: use a plain name", part.name, part.v)
		}
	}
	return nil
}

func (t Target) withDefaults() Target {
	if t.Namespace == "" {
		t.Namespace = DefaultNamespace
	}
	if t.Snapshotter == "" {
		t.Snapshotter = DefaultSnapshotter
	}
	return t
}
