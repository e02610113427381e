package main

import (
	"context"
	"errors"
	"expvar"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/sys"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/cachedigest"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	nettrace "golang.org/x/net/trace"
)

// debugListener listens on a debug address: host:port, tcp://host:port or
// unix:///path (BuildKit's test harness passes a unix socket in
// BUILDKITD_DEBUGADDR).
func debugListener(addr string) (net.Listener, error) {
	proto, rest, ok := strings.Cut(addr, "://")
	switch {
	case !ok:
		return net.Listen("tcp", addr)
	case proto == "tcp":
		return net.Listen("tcp", rest)
	case proto == "unix":
		return sys.GetLocalListener(rest, os.Getuid(), os.Getgid())
	}
	return nil, fmt.Errorf("address %s: use host:port, tcp://host:port or unix:///path", addr)
}

// serveDebug serves newDebugMux's endpoints on addr, as buildkitd's
// --debugaddr does, until ctx ends. The address is opt-in: anyone who can
// reach it can read the daemon's profiles and cache keys and compact its
// databases, so it is meant for 127.0.0.1 or a unix socket's peers, never
// a public interface.
func serveDebug(ctx context.Context, addr string) (func(), error) {
	l, err := debugListener(addr)
	if err != nil {
		return nil, fmt.Errorf("--debugaddr %s: %w", addr, err)
	}
	m := newDebugMux(cacheDebug{store: debugCache.get, digests: cachedigest.GetDefaultDB})
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
	bklog.L.Infof("debug handlers listening at %s", l.Addr())
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			bklog.L.WithError(err).Warn("debug server stopped")
		}
	}()
	return func() { _ = srv.Shutdown(context.WithoutCancel(ctx)) }, nil
}

// newDebugMux routes buildkitd's debug endpoints: Go's profiles
// (/debug/pprof/), expvars, request traces, /debug/gc, Prometheus metrics
// (/metrics), the cache inspection endpoints (/debug/cache/), the
// execution-trace flight recorder (/debug/flight/trace) and database
// compaction (/debug/compaction).
func newDebugMux(cache cacheDebug) *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m.Handle("/debug/vars", expvar.Handler())
	// The address is opt-in: whoever reaches it may read request traces.
	nettrace.AuthRequest = func(*http.Request) (bool, bool) { return true, true }
	m.HandleFunc("/debug/requests", nettrace.Traces)
	m.HandleFunc("/debug/events", nettrace.Events)
	m.HandleFunc("/debug/gc", func(http.ResponseWriter, *http.Request) {
		runtime.GC()
		bklog.L.Debugf("triggered GC from debug endpoint")
	})
	m.Handle("/metrics", promhttp.Handler())
	cache.register(m)
	new(flightRecorder).register(m)
	registerCompaction(m)
	return m
}
