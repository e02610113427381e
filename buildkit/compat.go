package buildkit

import (
	"sync/atomic"

	"github.com/lade-build/lade/blobs"
)

// Defaults are daemon-wide defaults of the exporters' attributes: the
// switches that turn lade's intended differences from stock BuildKit off,
// so that a daemon gives stock's images (and passes BuildKit's own
// integration tests that compare digests). An export's own attribute
// (keep-empty-layers=..., compression=...) still wins.
type Defaults struct {
	// KeepEmptyLayers keeps the layers whose diff is empty, as stock
	// BuildKit does (lade drops new empty layers by default).
	KeepEmptyLayers bool
	// GzipCompat writes gzip layers with Go's compress/gzip, the bytes
	// (and so the blob and manifest digests) of stock BuildKit, instead of
	// lade's parallel gzip. compression=gzip then means gzip-compat.
	GzipCompat bool
	// StockTarMetadata sends a type=oci tar once the image is written, so
	// that its file metadata carries the digest, descriptor and config
	// digest as stock's. Without it, an OCI tar without SOURCE_DATE_EPOCH
	// starts while the layers are computed (stream.go) and its metadata
	// names the image only.
	StockTarMetadata bool
}

// daemonDefaults are the Defaults of every worker's exporters in this
// process; set once at start (cmd/lade-buildkitd's compat flags).
var daemonDefaults atomic.Pointer[Defaults]

// SetDaemonDefaults sets the Defaults the exporters of every Worker use.
// Call it before the workers are created.
func SetDaemonDefaults(d Defaults) { daemonDefaults.Store(&d) }

// DaemonDefaults returns the Defaults set by SetDaemonDefaults (zero:
// lade's behaviour).
func DaemonDefaults() Defaults {
	if d := daemonDefaults.Load(); d != nil {
		return *d
	}
	return Defaults{}
}

// apply sets the defaults on s where the export's attributes in did not
// choose.
func (d Defaults) apply(s *settings, in map[string]string) {
	if _, set := in["keep-empty-layers"]; !set && d.KeepEmptyLayers {
		s.out.Options.KeepEmptyLayers = true
	}
	if c := &s.out.Options.Compression; d.GzipCompat && (c.Type == "" || c.Type == blobs.Gzip) {
		c.Type = blobs.GzipCompat
	}
}
