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
