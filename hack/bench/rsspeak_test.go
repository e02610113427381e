package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// smapsSample is /proc/PID/smaps cut down: the executable, two anonymous
// mappings (one bracketed), and a bbolt database mapped twice.
const smapsSample = `00400000-01db3000 r-xp 00000000 fe:00 123 /bin/buildkitd
Size:              26316 kB
Rss:               21000 kB
Anonymous:             0 kB
Swap:                  0 kB
27aa5c400000-27aa61800000 rw-p 00000000 00:00 0 
Rss:               80880 kB
Anonymous:         80880 kB
Swap:                 12 kB
7f7ccc400000-7f7ccd400000 r--s 00000000 07:02 77 /roots/metadata v2.db
Rss:                4388 kB
Anonymous:             0 kB
7f7ccd400000-7f7cce400000 r--s 01000000 07:02 77 /roots/metadata v2.db
Rss:                 100 kB
Anonymous:             0 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Rss:                 132 kB
Anonymous:           132 kB
VmFlags: rd wr mr mw me gd ac
`

// TestParseSmaps: mappings with their names (spaces kept), offsets and
// sizes, and the sums per file with every anonymous mapping together.
func TestParseSmaps(t *testing.T) {
	maps, err := parseSmaps(strings.NewReader(smapsSample))
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 5 {
		t.Fatalf("parsed %d mappings, want 5: %+v", len(maps), maps)
	}
	if m := maps[3]; m.name != "/roots/metadata v2.db" || m.offset != 0x1000000 || m.rss != 100<<10 || m.perms != "r--s" {
		t.Errorf("mapping 3 = %+v", m)
	}
	if m := maps[1]; m.name != "" || m.anon != 80880<<10 || m.swap != 12<<10 {
		t.Errorf("mapping 1 = %+v", m)
	}
	got := byName(maps)
	want := []mapping{
		{name: "[anon]", rss: (80880 + 132) << 10, anon: (80880 + 132) << 10, swap: 12 << 10},
		{name: "/bin/buildkitd", rss: 21000 << 10},
		{name: "/roots/metadata v2.db", rss: (4388 + 100) << 10},
	}
	if len(got) != len(want) {
		t.Fatalf("byName = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("byName[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := parseSmaps(strings.NewReader("Rss: 1 kB\n")); err == nil {
		t.Error("smaps without a mapping parsed without error")
	}
}

// TestWritePeak: the dump has the status lines, the sums and the largest
// mapping first.
func TestWritePeak(t *testing.T) {
	maps, err := parseSmaps(strings.NewReader(smapsSample))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	status := []byte("Name:\tbuildkitd\nVmHWM:\t  135732 kB\nRssFile:\t   49204 kB\nSigQ:\t0/1\n")
	writePeak(&b, time.Date(2026, 12, 6, 20, 43, 24, 853e6, time.UTC), status, maps)
	out := b.String()
	for _, s := range []string{"at 20:43:24.853\n", "VmHWM:\t  135732 kB\n", "    4488        0        0 /roots/metadata v2.db\n",
		"largest mappings: Rss kB, Anonymous kB, address, perms, name\n   80880    80880 27aa5c400000-27aa61800000 rw-p \n"} {
		if !strings.Contains(out, s) {
			t.Errorf("dump lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "SigQ") || strings.Contains(out, "Name:") {
		t.Errorf("dump has status lines other than memory's:\n%s", out)
	}
}

// TestNotePeak dumps this process's map (the report and the raw smaps)
// once, and again only when its VmHWM rises.
func TestNotePeak(t *testing.T) {
	dir := t.TempDir()
	pid := os.Getpid()
	status := []byte("VmHWM:\t  1000 kB\n")
	if err := notePeak(dir, pid, status); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*-*.txt"))
	if len(files) != 1 {
		t.Fatalf("dumps %v, want one", files)
	}
	b, _ := os.ReadFile(files[0])
	if !strings.Contains(string(b), "VmHWM:\t  1000 kB") || !strings.Contains(string(b), "[anon]") {
		t.Errorf("dump:\n%s", b)
	}
	raw, _ := filepath.Glob(filepath.Join(dir, "*-*.smaps"))
	if len(raw) != 1 {
		t.Fatalf("raw smaps %v, want one", raw)
	}
	os.Remove(files[0])
	os.Remove(raw[0])
	if err := notePeak(dir, pid, status); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
		t.Errorf("dumped again without a rise: %v", files)
	}
	if err := notePeak(dir, pid, []byte("VmHWM:\t  1001 kB\n")); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 2 {
		t.Errorf("no dump after a rise: %v", files)
	}
}

// sink keeps the test's reads of mapped pages.
var sink byte

// TestResidentPages maps a file, touches two of its pages, and finds
// exactly those resident, at their file offsets.
func TestResidentPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, make([]byte, 16*pageSize), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Evict it (clean pages only) and ask for no read-ahead, so only the
	// touched pages are read and mapped.
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	b, err := unix.Mmap(int(f.Fd()), 4*pageSize, 12*pageSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	if err := unix.Madvise(b, unix.MADV_RANDOM); err != nil {
		t.Fatal(err)
	}
	sink += b[0] + b[5*pageSize] // file pages 4 and 9
	sm, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	maps, err := parseSmaps(sm)
	sm.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if m.name != path {
			continue
		}
		runs, _, err := residentPages(os.Getpid(), m)
		if err != nil {
			t.Fatal(err)
		}
		want := []pageRun{{4 * pageSize, 5 * pageSize}, {9 * pageSize, 10 * pageSize}}
		if len(runs) != 2 || runs[0] != want[0] || runs[1] != want[1] {
			t.Errorf("resident runs %v, want %v", runs, want)
		}
		if s := runsString(runs, 1); s != "16-20 (+1 more)" {
			t.Errorf("runsString = %q", s)
		}
		return
	}
	t.Fatalf("mapping of %s not in smaps", path)
}

// TestDebugAddrArg finds the daemon's pprof address in its command line.
func TestDebugAddrArg(t *testing.T) {
	for cmdline, want := range map[string]string{
		"buildkitd\x00--root\x00/r\x00--debugaddr\x00127.0.0.1:5\x00":   "127.0.0.1:5",
		"lade-buildkitd\x00--debugaddr=127.0.0.1:6\x00--root\x00/r\x00": "127.0.0.1:6",
		"buildkitd\x00--root\x00/r\x00":                                 "",
		"buildkitd\x00--debugaddr":                                      "",
	} {
		if got := debugAddrArg([]byte(cmdline)); got != want {
			t.Errorf("debugAddrArg(%q) = %q, want %q", cmdline, got, want)
		}
	}
}
