package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Which pages of a mapped file are resident at the peak (--rss-smaps).
// A file mapping's Rss counts every page the process has mapped, and the
// kernel maps a whole large folio of the page cache at once (fault-around),
// so the same reads can leave more resident when the file's pages were
// cached as large folios (written or read ahead in large runs). The dump
// lists the resident runs of each large file mapping, as file offsets, and
// how much of it sits in large folios (/proc/kpageflags, root only).

// pageSize is the base page size of the daemons' mappings.
const pageSize = 4096

// Bits of /proc/PID/pagemap and /proc/kpageflags entries.
const (
	pagemapPresent = 1 << 63
	pagemapPFN     = 1<<55 - 1
	kpfCompoundH   = 1 << 15 // head of a large folio
	kpfCompoundT   = 1 << 16 // tail of a large folio
)

// pageRun is a run of resident pages: file offsets [from, to).
type pageRun struct{ from, to int64 }

// residentPages reads the pagemap of pid over mapping m and returns the
// runs of resident pages as offsets in the mapped file, and how many
// bytes of them are in large folios (0 when kpageflags is not readable).
func residentPages(pid int, m mapping) (runs []pageRun, large int64, err error) {
	lo, hi, err := mapRange(m.addr)
	if err != nil {
		return nil, 0, err
	}
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, 0, err
	}
	defer pm.Close()
	buf := make([]byte, (hi-lo)/pageSize*8)
	if _, err := pm.ReadAt(buf, int64(lo/pageSize*8)); err != nil {
		return nil, 0, fmt.Errorf("pagemap: %w", err)
	}
	flags, _ := os.Open("/proc/kpageflags")
	if flags != nil {
		defer flags.Close()
	}
	for i := 0; i < len(buf)/8; i++ {
		e := binary.LittleEndian.Uint64(buf[i*8:])
		if e&pagemapPresent == 0 {
			continue
		}
		off := m.offset + int64(i)*pageSize
		if n := len(runs); n > 0 && runs[n-1].to == off {
			runs[n-1].to += pageSize
		} else {
			runs = append(runs, pageRun{off, off + pageSize})
		}
		if pfn := e & pagemapPFN; flags != nil && pfn != 0 && inLargeFolio(flags, pfn) {
			large += pageSize
		}
	}
	return runs, large, nil
}

// inLargeFolio reports whether page frame pfn is part of a large folio.
func inLargeFolio(kpageflags io.ReaderAt, pfn uint64) bool {
	var b [8]byte
	if _, err := kpageflags.ReadAt(b[:], int64(pfn*8)); err != nil {
		return false
	}
	return binary.LittleEndian.Uint64(b[:])&(kpfCompoundH|kpfCompoundT) != 0
}

// mapRange parses a smaps address range "lo-hi" (hex).
func mapRange(s string) (lo, hi uint64, err error) {
	a, b, _ := strings.Cut(s, "-")
	if lo, err = strconv.ParseUint(a, 16, 64); err == nil {
		hi, err = strconv.ParseUint(b, 16, 64)
	}
	if err != nil || hi < lo {
		return 0, 0, fmt.Errorf("bad address range %q", s)
	}
	return lo, hi, nil
}

// runsString renders runs as KiB offsets, "0-16 4096-8320", at most max
// runs and then how many more.
func runsString(runs []pageRun, max int) string {
	var parts []string
	for i, r := range runs {
		if i == max {
			parts = append(parts, fmt.Sprintf("(+%d more)", len(runs)-max))
			break
		}
		parts = append(parts, fmt.Sprintf("%d-%d", r.from>>10, r.to>>10))
	}
	return strings.Join(parts, " ")
}
