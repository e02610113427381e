package zstdchunked

// rollSum is bup's rolling checksum over a 64-byte window, as
// containers/storage's compressor (after Perkeep's rollsum) computes it.
type rollSum struct {
	s1, s2 uint32
	window [rollWindow]uint8
	wofs   int
}

const (
	rollWindow     = 64
	rollCharOffset = 31
	rollSplitMask  = 1<<rollsumBits - 1
)

func (rs *rollSum) reset() {
	*rs = rollSum{s1: rollWindow * rollCharOffset, s2: rollWindow * (rollWindow - 1) * rollCharOffset}
}

// roll adds ch and reports whether a chunk ends after it.
func (rs *rollSum) roll(ch byte) bool {
	drop := uint32(rs.window[rs.wofs])
	rs.s1 += uint32(ch) - drop
	rs.s2 += rs.s1 - rollWindow*(drop+rollCharOffset)
	rs.window[rs.wofs] = ch
	rs.wofs = (rs.wofs + 1) & (rollWindow - 1)
	return rs.s2&rollSplitMask == rollSplitMask
}

// rollZeros adds n zero bytes. After a window of zeros the sums no
// longer change, so at most one window is rolled.
func (rs *rollSum) rollZeros(n int64) {
	for range min(n, rollWindow) {
		rs.roll(0)
	}
}
