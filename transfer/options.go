package transfer

import (
	"github.com/lade-build/lade/exporter/push"
	"github.com/lade-build/lade/progress"
	"github.com/lade-build/lade/registries"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options control Copy and Resolve. The zero value copies the host
// platform's image of a multi-platform source, resolves registry names
// with Docker's normalization and uses push's registry defaults.
type Options struct {
	// All copies every platform of an index (and the index itself, so its
	// digest is kept).
	All bool
	// Platforms picks these platforms of an index: one gives that
	// platform's manifest alone, several a new index of their manifests.
	// Empty with All unset means the host's platform.
	Platforms []ocispec.Platform
	// Registry holds the registry settings (credentials from the docker
	// config and its helpers, CA, insecure, retries); its Progress is
	// ignored in favour of Progress.
	Registry push.Options
	// Registries resolves registry names: short names, aliases, mirrors,
	// insecure and blocked registries. nil means Docker's normalization
	// and no per-registry settings.
	Registries *registries.Config
	// Progress receives one vertex per blob with its bytes; nil discards.
	Progress progress.Writer
}
