package main

import (
	"fmt"
	"net/http"
	"runtime/trace"
	"sync"
	"time"
)

// flightRecorder serves buildkitd's /debug/flight/trace endpoints over Go's
// execution-trace flight recorder: start and stop it, set the window it
// keeps while stopped, and download the window as a trace file
// (`go tool trace` reads it).
type flightRecorder struct {
	mu       sync.Mutex
	recorder *trace.FlightRecorder
}

// register adds the /debug/flight/trace endpoints to m, with buildkitd's
// paths and methods.
func (f *flightRecorder) register(m *http.ServeMux) {
	f.recorder = trace.NewFlightRecorder(trace.FlightRecorderConfig{})
	const p = "/debug/flight/trace"
	m.HandleFunc("POST "+p+"/start", f.start)
	m.HandleFunc("POST "+p+"/stop", f.stop)
	m.HandleFunc("POST "+p+"/set_period", f.setPeriod)
	m.HandleFunc("GET "+p, f.write)
}

func (f *flightRecorder) start(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.recorder.Enabled() {
		http.Error(w, "flight recorder is already running", http.StatusConflict)
		return
	}
	if err := f.recorder.Start(); err != nil {
		http.Error(w, fmt.Sprintf("could not start flight recorder: %s", err), http.StatusInternalServerError)
	}
}

func (f *flightRecorder) stop(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.recorder.Enabled() {
		http.Error(w, "flight recorder is not running", http.StatusConflict)
		return
	}
	f.recorder.Stop()
}

// setPeriod sets how much recent execution (?period=, a Go duration) the
// next start keeps; Go's recorder takes it when created, so a stopped one
// is replaced.
func (f *flightRecorder) setPeriod(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.recorder.Enabled() {
		http.Error(w, "flight recorder is running, stop it to change its period", http.StatusPreconditionFailed)
		return
	}
	period, err := time.ParseDuration(r.FormValue("period"))
	if err != nil || period <= 0 {
		http.Error(w, fmt.Sprintf("invalid flight recorder period %q: use a positive Go duration such as 30s", r.FormValue("period")), http.StatusBadRequest)
		return
	}
	f.recorder = trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: period})
}

// write sends the recorder's current window as a trace file.
func (f *flightRecorder) write(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.recorder.Enabled() {
		http.Error(w, "could not write in-flight trace: flight recorder is not running; POST /debug/flight/trace/start first", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="trace"`)
	if _, err := f.recorder.WriteTo(w); err != nil {
		http.Error(w, fmt.Sprintf("could not write in-flight trace: %s", err), http.StatusInternalServerError)
	}
}
