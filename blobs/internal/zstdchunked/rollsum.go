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
	drop := uint32(rs.window[rs.wofs&(rollWindow-1)])
	rs.s1 += uint32(ch) - drop
	rs.s2 += rs.s1 - rollWindow*(drop+rollCharOffset)
	rs.window[rs.wofs&(rollWindow-1)] = ch
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

// scan rolls the bytes of b up to the first zero byte or the first chunk
// end, whichever comes first, and returns how many it rolled and whether
// a chunk ends after the last of them. It is the writer's hottest loop:
// the first window of b rolls through the ring; after it, the byte that
// leaves the window is read from b itself, and the ring is refilled from
// b's last window once at the end.
func (rs *rollSum) scan(b []byte) (n int, split bool) {
	s1, s2 := rs.s1, rs.s2
	w := &rs.window
	wofs := rs.wofs
	i := 0
	head := min(len(b), rollWindow)
	for ; i < head; i++ {
		c := b[i]
		if c == 0 {
			break
		}
		drop := uint32(w[wofs&(rollWindow-1)])
		w[wofs&(rollWindow-1)] = c
		wofs++
		s1 += uint32(c) - drop
		s2 += s1 - rollWindow*(drop+rollCharOffset)
		if s2&rollSplitMask == rollSplitMask {
			i++
			split = true
			break
		}
	}
	if i == rollWindow && !split {
		// The ring now holds b[0:64] from wofs on; b is the window from here.
		for ; i < len(b); i++ {
			c := b[i]
			if c == 0 {
				break
			}
			drop := uint32(b[i-rollWindow])
			s1 += uint32(c) - drop
			s2 += s1 - rollWindow*(drop+rollCharOffset)
			if s2&rollSplitMask == rollSplitMask {
				i++
				split = true
				break
			}
		}
		// Refill the ring with the last window, oldest byte at wofs.
		wofs += i - rollWindow
		last := b[i-rollWindow : i]
		for j := range last {
			w[(wofs+j)&(rollWindow-1)] = last[j]
		}
	}
	rs.s1, rs.s2, rs.wofs = s1, s2, wofs&(rollWindow-1)
	return i, split
}
