package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// traceExport fetches a Go execution trace of seconds from the daemon's
// --debugaddr (net/http/pprof's /debug/pprof/trace) into file. It is
// started when the progress shows the exporter vertex, so the trace covers
// the export; `go tool trace -pprof=syscall|sync|sched FILE` then tells
// where the export's goroutines waited instead of running.
func traceExport(ctx context.Context, debugAddr, file string, seconds int) error {
	return fetchDebug(ctx, debugAddr, "trace", file, seconds)
}

// fetchDebug fetches net/http/pprof's /debug/pprof/KIND?seconds=N from the
// daemon's --debugaddr (kind "trace" or "profile") into file.
func fetchDebug(ctx context.Context, debugAddr, kind, file string, seconds int) error {
	hc := &http.Client{Timeout: time.Duration(seconds+30) * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", debugAddr, kind, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s from %s: %w", kind, debugAddr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s from %s: %s", kind, debugAddr, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		os.Remove(file)
		return fmt.Errorf("%s from %s: %w", kind, debugAddr, err)
	}
	return f.Close()
}
