package main

import (
	"bufio"
	"bytes"
	"cmp"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// What a daemon has resident at its peak (issue #17). With --rss-smaps DIR
// the sampler (cpu.go) also reads each daemon's VmHWM, and every time it
// rises writes the daemon's memory map to DIR/COMM-PID.txt: the status
// lines, then Rss and Anonymous per mapped file (all anonymous mappings
// together), then the largest single mappings. The file left at the end of
// a build is the map at (one sample after) the build's peak, so lade's and
// stock's can be compared mapping by mapping; beside it COMM-PID.heap.pb.gz
// is the daemon's heap profile fetched then from its --debugaddr. Reading
// smaps costs the bench a few milliseconds per rise; serving the profiles
// costs the daemon some CPU and memory, so a run with --rss-smaps is for
// finding what is resident, not for the report's numbers.

// rssSmapsDir is the --rss-smaps directory, empty when not dumping.
var rssSmapsDir = flag.String("rss-smaps", "", "write each daemon's memory map (smaps per mapping) and heap profile at its peak RSS to DIR/COMM-PID.txt, .smaps (the raw /proc smaps) and .heap.pb.gz, rewritten whenever VmHWM rises (diagnosis only: the profiles disturb the daemons)")

// peakDumps remembers the last VmHWM dumped per process.
var peakDumps = struct {
	sync.Mutex
	hwm map[int]int64
}{hwm: map[int]int64{}}

// notePeak dumps pid's memory map into dir when its VmHWM (from its
// status, read by the caller) rose since the last dump. Errors are
// returned for the caller to report once; a vanished process is not one.
func notePeak(dir string, pid int, status []byte) error {
	hwm := statusField(status, "VmHWM:")
	peakDumps.Lock()
	rose := hwm > peakDumps.hwm[pid]
	if rose {
		peakDumps.hwm[pid] = hwm
	}
	peakDumps.Unlock()
	if !rose {
		return nil
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return nil // exited
	}
	maps, err := parseSmaps(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("smaps of %d: %w", pid, err)
	}
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	var b bytes.Buffer
	writePeak(&b, time.Now(), status, maps)
	writeResident(&b, pid, maps)
	name := fmt.Sprintf("%s-%d.txt", strings.TrimSpace(string(comm)), pid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--rss-smaps: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--rss-smaps: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, strings.TrimSuffix(name, ".txt")+".smaps"), raw, 0o644); err != nil {
		return fmt.Errorf("--rss-smaps: %w", err)
	}
	if addr := debugAddrOf(pid); addr != "" {
		go saveHeapProfile(addr, filepath.Join(dir, strings.TrimSuffix(name, ".txt")+".heap.pb.gz"))
	}
	return nil
}

// debugAddrOf returns the --debugaddr a daemon was started with, or "".
func debugAddrOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return debugAddrArg(b)
}

// debugAddrArg returns the value of --debugaddr in a /proc cmdline (NUL
// separated), as "--debugaddr ADDR" or "--debugaddr=ADDR", or "".
func debugAddrArg(cmdline []byte) string {
	args := strings.Split(string(cmdline), "\x00")
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--debugaddr="); ok {
			return v
		}
		if a == "--debugaddr" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// heapProfiles serializes saveHeapProfile, so that a rise's profile never
// overwrites a later one's.
var heapProfiles sync.Mutex

// saveHeapProfile writes the daemon's heap profile (the live heap as of
// its last GC, and what was allocated since) to path, or nothing when the
// daemon does not answer.
func saveHeapProfile(addr, path string) {
	heapProfiles.Lock()
	defer heapProfiles.Unlock()
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + addr + "/debug/pprof/heap")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return
	}
	_ = os.WriteFile(path, b, 0o644)
}

// statusField returns the value of a kB field of a /proc status in bytes,
// or 0 when absent.
func statusField(status []byte, key string) int64 {
	for _, line := range bytes.Split(status, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(key)); ok {
			return statusKB(v)
		}
	}
	return 0
}

// mapping is one line of /proc/PID/smaps's header and its sizes in bytes.
type mapping struct {
	addr, perms, name string // name "" for anonymous memory
	offset            int64  // of the mapping in its file
	rss, anon, swap   int64
}

// parseSmaps reads /proc/PID/smaps.
func parseSmaps(r io.Reader) ([]mapping, error) {
	var maps []mapping
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if isMapHeader(f[0]) {
			m := mapping{addr: f[0]}
			if len(f) > 2 {
				m.perms = f[1]
				m.offset, _ = strconv.ParseInt(f[2], 16, 64)
			}
			if len(f) > 5 {
				m.name = strings.Join(f[5:], " ")
			}
			maps = append(maps, m)
			continue
		}
		if len(maps) == 0 || len(f) < 2 {
			continue
		}
		m := &maps[len(maps)-1]
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			m.rss = n << 10
		case "Anonymous:":
			m.anon = n << 10
		case "Swap:":
			m.swap = n << 10
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(maps) == 0 {
		return nil, fmt.Errorf("no mapping found")
	}
	return maps, nil
}

// isMapHeader reports whether a smaps field is an address range
// ("7f00-7f10"), which starts a mapping's header line.
func isMapHeader(s string) bool {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok || lo == "" || hi == "" {
		return false
	}
	_, err1 := strconv.ParseUint(lo, 16, 64)
	_, err2 := strconv.ParseUint(hi, 16, 64)
	return err1 == nil && err2 == nil
}

// byName sums the mappings per mapped file; every anonymous mapping
// (no name, or a bracketed one such as [heap] and [stack]) counts under
// "[anon]". The result is sorted by Rss, largest first.
func byName(maps []mapping) []mapping {
	sums := map[string]*mapping{}
	var keys []string
	for _, m := range maps {
		k := m.name
		if k == "" || strings.HasPrefix(k, "[") {
			k = "[anon]"
		}
		s := sums[k]
		if s == nil {
			s = &mapping{name: k}
			sums[k] = s
			keys = append(keys, k)
		}
		s.rss += m.rss
		s.anon += m.anon
		s.swap += m.swap
	}
	out := make([]mapping, 0, len(keys))
	for _, k := range keys {
		out = append(out, *sums[k])
	}
	sortByRSS(out)
	return out
}

// sortByRSS sorts mappings by Rss, largest first, then by name and
// address so that equal ones keep a stable order.
func sortByRSS(maps []mapping) {
	slices.SortStableFunc(maps, func(a, b mapping) int {
		return cmp.Or(cmp.Compare(b.rss, a.rss), cmp.Compare(a.name, b.name), cmp.Compare(a.addr, b.addr))
	})
}

// writePeak renders a peak's dump: the status's memory lines, the sums
// per mapped file, and the ten largest single mappings.
func writePeak(w io.Writer, at time.Time, status []byte, maps []mapping) {
	fmt.Fprintf(w, "at %s\n", at.Format("15:04:05.000"))
	for _, line := range bytes.Split(status, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("Vm")) || bytes.HasPrefix(line, []byte("Rss")) || bytes.HasPrefix(line, []byte("Threads")) {
			fmt.Fprintf(w, "%s\n", line)
		}
	}
	kb := func(n int64) int64 { return n >> 10 }
	fmt.Fprintf(w, "\nper file: Rss kB, Anonymous kB, Swap kB, name\n")
	for _, m := range byName(maps) {
		if m.rss > 0 || m.swap > 0 {
			fmt.Fprintf(w, "%8d %8d %8d %s\n", kb(m.rss), kb(m.anon), kb(m.swap), m.name)
		}
	}
	single := slices.Clone(maps)
	sortByRSS(single)
	fmt.Fprintf(w, "\nlargest mappings: Rss kB, Anonymous kB, address, perms, name\n")
	for _, m := range single[:min(10, len(single))] {
		fmt.Fprintf(w, "%8d %8d %s %s %s\n", kb(m.rss), kb(m.anon), m.addr, m.perms, m.name)
	}
}

// writeResident lists the resident pages of every file mapping of 1 MiB
// or more resident that is not the executable's or a library's code.
func writeResident(w io.Writer, pid int, maps []mapping) {
	fmt.Fprintf(w, "\nresident file offsets (KiB) of large data mappings\n")
	for _, m := range maps {
		if m.rss < 1<<20 || m.name == "" || strings.HasPrefix(m.name, "[") || strings.Contains(m.perms, "x") {
			continue
		}
		runs, large, err := residentPages(pid, m)
		if err != nil {
			fmt.Fprintf(w, "%s: %v\n", m.name, err)
			continue
		}
		fmt.Fprintf(w, "%s %s (%d KiB, %d KiB in large folios): %s\n", m.addr, m.name, m.rss>>10, large>>10, runsString(runs, 40))
	}
}
