package blobs

import (
	"fmt"
	"math"

	"github.com/lade-build/lade/blobs/internal/isal"
	"github.com/lade-build/lade/blobs/internal/libdeflate"
)

// newBlockEncoder returns an encoder of lib ("isal" or "libdeflate") at
// the library's own level.
func newBlockEncoder(lib string, level int) (blockEncoder, error) {
	switch lib {
	case "isal":
		e, err := isal.NewEncoder(level)
		if err != nil {
			return nil, err
		}
		return isalBlocks{e}, nil
	case "libdeflate":
		c, err := libdeflate.NewCompressor(level)
		if err != nil {
			return nil, err
		}
		return libdeflateBlocks{c}, nil
	}
	return nil, fmt.Errorf("gzip: unknown native library %q", lib)
}

// isalBlocks deflates blocks into one stream with ISA-L.
type isalBlocks struct{ e *isal.Encoder }

func (b isalBlocks) block(dst, dict, in []byte, final bool) ([]byte, error) {
	return b.e.Block(dst, dict, in, final)
}

// Close frees the encoder.
func (b isalBlocks) Close() { b.e.Close() }

// libdeflateBlocks makes each block a gzip member with libdeflate (the
// blocks that look incompressible never reach it: see nativeGzip.run).
type libdeflateBlocks struct{ c *libdeflate.Compressor }

func (b libdeflateBlocks) block(dst, _, in []byte, _ bool) ([]byte, error) {
	return b.c.Gzip(dst, in)
}

// Close frees the compressor.
func (b libdeflateBlocks) Close() { b.c.Close() }

// Incompressible detection: samplesPerBlock spans of sampleSize bytes,
// spread evenly over a block, each with a byte entropy (order 0) of at
// least randomEntropy bits per byte. Random or already compressed data
// measures about 7.95 on 4 KiB; text 4-5.5, machine code 5.5-6.5. The
// decision depends only on the block's bytes.
const (
	sampleSize      = 4 << 10
	samplesPerBlock = 16
	randomEntropy   = 7.8
)

// incompressible reports whether every sample of in looks random. Small
// blocks are never called incompressible.
func incompressible(in []byte) bool {
	if len(in) < samplesPerBlock*sampleSize {
		return false
	}
	stride := (len(in) - sampleSize) / (samplesPerBlock - 1)
	for i := range samplesPerBlock {
		if entropy(in[i*stride:i*stride+sampleSize]) < randomEntropy {
			return false
		}
	}
	return true
}

// entropy returns the order-0 entropy of b in bits per byte.
func entropy(b []byte) float64 {
	var hist [256]int
	for _, c := range b {
		hist[c]++
	}
	h, n := 0.0, float64(len(b))
	for _, k := range hist {
		if k > 0 {
			p := float64(k) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
