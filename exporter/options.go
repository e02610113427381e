package exporter

import (
	"fmt"
	"time"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/progress"
)

// Options control one Commit. The zero value is valid: OCI media types,
// lade's parallel gzip, no epoch, empty layers dropped.
type Options struct {
	// Docker selects Docker schema2 media types instead of OCI.
	Docker bool
	// Compression of new layer blobs.
	Compression blobs.Compression
	// ForceCompression recompresses existing (base) blobs whose compression
	// differs from Compression.
	ForceCompression bool
	// Epoch is SOURCE_DATE_EPOCH: config and history "created" are clamped
	// to it and the OCI created annotation uses it. It is the default of
	// each platform's PlatformSource.Epoch.
	Epoch *time.Time
	// Created is the image's created time when its config has none (the
	// epoch, when set, still clamps it); nil means now. Set it to commit
	// one source several times with identical results.
	Created *time.Time
	// RewriteTimestamp clamps file timestamps in new layers to the
	// platform's epoch, inside the one diff pass. Requires an epoch for
	// every platform (Epoch or PlatformSource.Epoch).
	RewriteTimestamp bool
	// KeepEmptyLayers keeps layers whose diff has no entries, as stock
	// BuildKit does.
	KeepEmptyLayers bool
	// RepairHistory turns a config history with more non-empty entries than
	// layers into a warning: the surplus entries are marked empty_layer and
	// the repair is reported. Without it that is an error.
	RepairHistory bool
	// Index writes an index even for a single platform.
	Index bool
	// Concurrency bounds the layers computed at once; 0 means GOMAXPROCS,
	// at least 2.
	Concurrency int
	// Progress receives events; nil discards them.
	Progress progress.Writer
	// Cache remembers computed blobs across exports; nil disables it.
	Cache blobs.Cache
	// Locker, with Cache, makes processes sharing a store compute each
	// shared layer once.
	Locker blobs.Locker
	// Soci builds a zTOC for each new gzip layer while it is compressed and
	// packages the image as a SOCI-enabled image (SOCI index manifest v2,
	// see soci.go); it needs gzip and OCI media types, and always writes an
	// index.
	Soci bool
	// SociSpanSize is the zTOC span size; 0 means 4 MiB.
	SociSpanSize int64
	// SociMinLayerSize is the smallest layer blob given a zTOC; 0 means
	// 10 MiB, -1 every layer.
	SociMinLayerSize int64
}

// Validate checks the options on their own.
func (o Options) Validate() error {
	c := o.compression()
	if err := c.Validate(); err != nil {
		return err
	}
	if err := o.validateSoci(); err != nil {
		return err
	}
	if o.Concurrency < 0 {
		return fmt.Errorf("concurrency %d is negative: use 0 for the default", o.Concurrency)
	}
	return checkEpoch(o.Epoch)
}

// checkEpoch refuses an epoch before 1970.
func checkEpoch(e *time.Time) error {
	if e != nil && e.Unix() < 0 {
		return fmt.Errorf("epoch %d is before 1970", e.Unix())
	}
	return nil
}

// epochOf is the epoch of one platform: its own, else the options'.
func (o Options) epochOf(ps PlatformSource) *time.Time {
	if ps.Epoch != nil {
		return ps.Epoch
	}
	return o.Epoch
}

func (o Options) compression() blobs.Compression {
	if o.Compression.Type == "" {
		return blobs.Compression{Type: blobs.DefaultCompression.Type, Level: o.Compression.Level}
	}
	return o.Compression
}
