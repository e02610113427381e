package archive

import (
	"hash"
	"hash/crc32"
	"io"
)

// castagnoli is the CRC-32C table: the polynomial the CPU computes in
// hardware (SSE 4.2 on amd64, the CRC32 instructions on arm64), at more
// than ten times the rate of SHA-256.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRCWriter takes the CRC-32C of what is written through it to W.
type CRCWriter struct {
	W io.Writer
	h hash.Hash32
}

// NewCRCWriter returns a CRCWriter on w.
func NewCRCWriter(w io.Writer) *CRCWriter {
	return &CRCWriter{W: w, h: crc32.New(castagnoli)}
}

// Write writes p to W and adds what W took to the CRC.
func (c *CRCWriter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.h.Write(p[:n])
	return n, err
}

// Sum32 returns the CRC-32C of the bytes written so far.
func (c *CRCWriter) Sum32() uint32 {
	return c.h.Sum32()
}

// crcCheck is a verifier of bytes against a CRC-32C.
type crcCheck struct {
	h    hash.Hash32
	want uint32
}

func newCRCCheck(want uint32) *crcCheck {
	return &crcCheck{h: crc32.New(castagnoli), want: want}
}

func (c *crcCheck) Write(p []byte) (int, error) { return c.h.Write(p) }

// Verified reports whether the bytes written have the CRC-32C wanted.
func (c *crcCheck) Verified() bool { return c.h.Sum32() == c.want }
