// Package blobs turns layers into diff pairs: for each ref of a chain, the
// digest of its uncompressed tar (diffID) and a compressed blob committed to
// a content store. Each layer is read once: tar -> sha256 (diffID) ->
// compressor -> sha256 (blob) -> content writer. Layers of all chains run
// concurrently under one bound, identical work asked at the same time runs
// once, and a Cache keyed by (layer identity, compression, level, epoch) lets a
// re-export reuse blobs without reading layer data.
package blobs

import (
	"context"
	"fmt"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// EmptyTarDiffID is the diffID of a tar with no entries (1024 zero bytes).
const EmptyTarDiffID = digest.Digest("sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef")

// Labels lade sets on the blobs it commits.
const (
	// LabelUncompressed is containerd's label naming a blob's diffID.
	LabelUncompressed = "containerd.io/uncompressed"
)

// Status says how a diff pair was obtained.
type Status string

// Statuses of a DiffPair.
const (
	// StatusNew: the layer was read and its blob written by this call.
	StatusNew Status = "new"
	// StatusReused: an existing blob was used without reading layer data.
	StatusReused Status = "reused"
	// StatusConverted: an existing blob was recompressed to another type.
	StatusConverted Status = "converted"
)

// DiffPair is one layer's result.
type DiffPair struct {
	// DiffID is the sha256 of the uncompressed tar.
	DiffID digest.Digest `json:"diffID"`
	// Blob describes the compressed blob in the store. Its Annotations hold
	// containerd.io/uncompressed.
	Blob ocispec.Descriptor `json:"blob"`
	// Compression is the compression of Blob.
	Compression Type `json:"compression"`
	// Empty is true when the tar has no entries.
	Empty bool `json:"empty,omitempty"`
	// Status says whether the blob is new, reused or converted.
	Status Status `json:"status"`
	// RefID is the ID of the ref the pair belongs to.
	RefID string `json:"refID"`
}

// Key identifies a blob in a Cache.
type Key struct {
	RefID       string
	Compression Type
	Level       int
	// Epoch is the clamp time in Unix seconds, or 0 for no clamping.
	Epoch int64
	// Codec names the encoder when it is not the type's default (see
	// ZstdCodec): blobs of two encoders differ.
	Codec string
}

// String renders the key as a stable string, suitable as a database key.
// Keys of the default encoders render as they did before Codec existed.
func (k Key) String() string {
	s := fmt.Sprintf("%s|%s|%d|%d", k.RefID, k.Compression, k.Level, k.Epoch)
	if k.Codec != "" {
		s += "|" + k.Codec
	}
	return s
}

// Cache remembers the diff pair computed for a Key. Implementations must be
// safe for concurrent use. Get returns ok=false on a miss; a hit is only a
// hint: callers verify the blob still exists in the store. Put overwrites.
type Cache interface {
	Get(ctx context.Context, k Key) (p DiffPair, ok bool, err error)
	Put(ctx context.Context, k Key, p DiffPair) error
}

// epochKey returns the Key epoch for t.
func epochKey(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.Unix()
}

// MemoryCache is an in-process Cache.
type MemoryCache struct {
	mu sync.Mutex
	m  map[string]DiffPair
}

// Get implements Cache.
func (c *MemoryCache) Get(_ context.Context, k Key) (DiffPair, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[k.String()]
	return p, ok, nil
}

// Put implements Cache.
func (c *MemoryCache) Put(_ context.Context, k Key, p DiffPair) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]DiffPair{}
	}
	c.m[k.String()] = p
	return nil
}
