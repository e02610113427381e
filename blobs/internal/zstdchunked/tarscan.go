package zstdchunked

import (
	"archive/tar"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

const blockSize = 512

// tarScanner finds the entries of a tar stream pushed to it piece by piece.
// It gathers the raw bytes between two contents (the padding of the
// previous content, extension headers and their data, the entry's header)
// and parses them with archive/tar once complete. After the end-of-archive
// block, everything else is the tail.
type tarScanner struct {
	region  []byte // raw bytes gathered since the last content
	padding int    // bytes of padding at the start of region
	ended   bool   // the end-of-archive block was seen
}

// expectPadding notes that a content of n bytes follows, so its padding
// comes before the next header.
func (s *tarScanner) expectPadding(n int64) {
	s.region = s.region[:0]
	s.padding = int((blockSize - n%blockSize) % blockSize)
}

// feed consumes bytes of p until an entry's headers are complete, and
// returns the rest of p, the raw bytes (valid until the next
// expectPadding) and the parsed header. hdr is nil when p ran out first.
func (s *tarScanner) feed(p []byte) (rest, raw []byte, hdr *tar.Header, err error) {
	if s.ended {
		s.region = append(s.region, p...)
		return nil, nil, nil, nil
	}
	for len(p) > 0 {
		need, err := s.need()
		if err != nil {
			return nil, nil, nil, err
		}
		if need == 0 {
			break
		}
		k := min(need, len(p))
		s.region, p = append(s.region, p[:k]...), p[k:]
	}
	if need, err := s.need(); err != nil || need > 0 || s.ended {
		if s.ended {
			s.region = append(s.region, p...)
			p = nil
		}
		return p, nil, nil, err
	}
	h, err := tar.NewReader(bytes.NewReader(s.region[s.padding:])).Next()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("zstd:chunked: parse tar header: %w", err)
	}
	if h.Typeflag == tar.TypeGNUSparse || hasSparseRecords(h) {
		return nil, nil, nil, fmt.Errorf("zstd:chunked: entry %q is a sparse tar entry, which zstd:chunked cannot describe: use compression=zstd for this layer", h.Name)
	}
	raw = s.region
	return p, raw, h, nil
}

// need returns how many more bytes complete the region, 0 when it holds
// an entry's headers; it sets ended at the end-of-archive block.
func (s *tarScanner) need() (int, error) {
	if len(s.region) < s.padding {
		return s.padding - len(s.region), nil
	}
	pos := s.padding
	for {
		if len(s.region) < pos+blockSize {
			return pos + blockSize - len(s.region), nil
		}
		blk := s.region[pos : pos+blockSize]
		if pos == s.padding && bytes.Equal(blk, zeroBlock[:blockSize]) {
			s.ended = true
			return 0, nil
		}
		switch blk[156] {
		case tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
			size, err := parseSize(blk[124:136])
			if err != nil {
				return 0, fmt.Errorf("zstd:chunked: tar extension header: %w", err)
			}
			pos += blockSize + int((size+blockSize-1)/blockSize*blockSize)
			if len(s.region) < pos {
				return pos - len(s.region), nil
			}
		case tar.TypeXGlobalHeader:
			return 0, fmt.Errorf("zstd:chunked: the layer tar has a global PAX header, which zstd:chunked cannot describe: use compression=zstd for this layer")
		default:
			if pos+blockSize != len(s.region) {
				return 0, fmt.Errorf("zstd:chunked: internal error: tar header region of %d bytes, want %d", len(s.region), pos+blockSize)
			}
			return 0, nil
		}
	}
}

// tail returns the bytes after the last content: its padding and the
// end-of-archive blocks with anything after them.
func (s *tarScanner) tail() ([]byte, error) {
	if !s.ended && len(s.region) > s.padding {
		return nil, fmt.Errorf("zstd:chunked: tar stream ends inside a header")
	}
	if !s.ended && len(s.region) < s.padding {
		return nil, fmt.Errorf("zstd:chunked: tar stream ends inside the padding of a file")
	}
	return s.region, nil
}

// parseSize parses a tar size field: octal, or base-256 when its high bit is set.
func parseSize(b []byte) (int64, error) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		var n int64
		for i, c := range b {
			if i == 0 {
				c &= 0x7f
			}
			n = n<<8 | int64(c)
		}
		return n, nil
	}
	s := strings.Trim(string(b), " \x00")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 8, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size field %q", s)
	}
	return n, nil
}

func hasSparseRecords(h *tar.Header) bool {
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
