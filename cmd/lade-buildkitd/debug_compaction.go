package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/moby/buildkit/util/db"
	"github.com/moby/buildkit/util/db/compaction"
	"github.com/moby/buildkit/util/disk"
)

// compactionStatus is one database's entry in GET /debug/compaction, in
// buildkitd's JSON shape.
type compactionStatus struct {
	compaction.Status
	Available int64
	Required  int64
	Reason    string
}

// registerCompaction adds buildkitd's /debug/compaction endpoints to m.
// They list and compact the bolt databases opened with a compaction
// policy; the daemon attaches a manual-only policy to cache.db and
// history.db (and the workers' databases) whenever the debug address is
// set, as buildkitd does.
func registerCompaction(m *http.ServeMux) {
	m.HandleFunc("GET /debug/compaction", compactionStatuses)
	m.HandleFunc("POST /debug/compaction", compactDatabase)
}

// compactionStatuses answers, per database path, its policy, size,
// reclaimable bytes, free disk space and whether a manual attempt may run.
func compactionStatuses(w http.ResponseWriter, _ *http.Request) {
	result := map[string]compactionStatus{}
	for path, s := range compaction.Files() {
		result[path] = inspectCompaction(path, s)
	}
	writeJSON(w, result, false)
}

func inspectCompaction(path string, s *compaction.Scheduler) compactionStatus {
	st, err := s.Inspect()
	entry := compactionStatus{Status: st}
	if err != nil {
		entry.Reason = err.Error()
		return entry
	}
	entry.Required = st.Stats.RequiredSpace()
	space, err := disk.GetDiskStat(filepath.Dir(path))
	if err != nil {
		entry.Reason = err.Error()
		return entry
	}
	entry.Available = space.Available
	opt := db.CompactOptions{
		MinReclaimBytes:        st.Config.MinReclaimBytes,
		MinReclaimPercent:      st.Config.MinReclaimPercent,
		MinReclaimPercentFloor: st.Config.MinReclaimPercentFloor,
	}
	switch {
	case !opt.MeetsReclaimThreshold(st.Stats.Size, st.Stats.Reclaimable):
		entry.Reason = "reclaimable space below threshold"
	case entry.Available < entry.Required:
		entry.Reason = "insufficient free disk space"
	default:
		entry.Reason = "eligible for a manual attempt after idle"
	}
	return entry
}

// compactDatabase requests a manual compaction of ?database= (a path GET
// lists) and streams the attempt's events, one per line, then a
// "completed:" line with the outcome.
func compactDatabase(w http.ResponseWriter, r *http.Request) {
	var origin http.CrossOriginProtection
	if err := origin.Check(r); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	s, ok := compaction.Files()[r.URL.Query().Get("database")]
	if !ok {
		http.Error(w, "unknown database; GET /debug/compaction lists available databases", http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(context.Canceled)
	req, err := s.Request(ctx)
	if err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, compaction.ErrBusy) {
			code = http.StatusConflict
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	write := func(line string) error {
		if err := rc.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
		return rc.Flush()
	}
	if write("manual attempt requested; this is not a dry run") != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case event := <-req.Events():
			if write(event) != nil {
				return
			}
		case outcome := <-req.Done():
			streamRemaining(req, write)
			res := outcome.Result
			_ = write(fmt.Sprintf("completed: compacted=%t before=%d after=%d reclaimed=%d copy_duration=%s reason=%q error=%q",
				res.Compacted, res.SizeBefore, res.SizeAfter, res.SizeBefore-res.SizeAfter, res.Duration, res.Reason, outcome.Error))
			return
		}
	}
}

// streamRemaining writes the events req queued before it finished.
func streamRemaining(req *compaction.Request, write func(string) error) {
	for {
		select {
		case event := <-req.Events():
			if write(event) != nil {
				return
			}
		default:
			return
		}
	}
}
