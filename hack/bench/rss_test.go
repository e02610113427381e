package main

import (
	"os"
	"testing"
	"time"
)

// TestRSSPeaks: the anonymous peak is taken over every sample, the
// exporter's over its window only.
func TestRSSPeaks(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	samples := []cpuSample{
		{at: at(0), anon: 90, file: 50}, // the build's peak of both
		{at: at(100), anon: 60, file: 45},
		{at: at(200), anon: 70, file: 45}, // the exporter's peak
		{at: at(300), anon: 65, file: 46},
	}
	anon, win := rssPeaks(samples, at(100), at(300))
	if anon != 90 || win != 115 {
		t.Errorf("rssPeaks = %d, %d; want 90, 115", anon, win)
	}
	if _, win := rssPeaks(samples, time.Time{}, time.Time{}); win != 0 {
		t.Errorf("no exporter window: peak %d, want 0", win)
	}
}

// TestProcRSS reads this process's own status.
func TestProcRSS(t *testing.T) {
	anon, file := procRSS(os.Getpid())
	if anon <= 0 || file <= 0 {
		t.Errorf("procRSS of this process = %d, %d; want both above 0", anon, file)
	}
	if got := statusKB([]byte("\t  1234 kB")); got != 1234<<10 {
		t.Errorf("statusKB = %d, want %d", got, 1234<<10)
	}
}

// TestWriteSeries: each sample is a line with its offset from the build's
// start, its phase (the layers status inside the exporter's window wins),
// its memory in KiB and the CPU so far.
func TestWriteSeries(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	samples := []cpuSample{
		{at: at(100), cpu: 50 * time.Millisecond, anon: 10 << 20, file: 40 << 20},
		{at: at(1100), cpu: time.Second, anon: 20 << 20, file: 41 << 20},
		{at: at(2100), cpu: 2 * time.Second, anon: 15 << 20, file: 42 << 20},
	}
	tm := buildTimes{exporterStart: at(1000), exporterEnd: at(3000), layersStart: at(1000), layersEnd: at(2000)}
	path := t.TempDir() + "/s.tsv"
	if err := writeSeries(path, t0, samples, tm); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "seconds\tphase\tanon_kib\tfile_kib\tcpu_s\n" +
		"0.100\tbuild\t10240\t40960\t0.050\n" +
		"1.100\tlayers\t20480\t41984\t1.000\n" +
		"2.100\texport\t15360\t43008\t2.000\n"
	if string(b) != want {
		t.Errorf("series:\n%s\nwant:\n%s", b, want)
	}
}
