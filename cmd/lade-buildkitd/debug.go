package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/moby/buildkit/util/bklog"
)

// serveDebug serves Go's profiles (/debug/pprof/) on addr, as buildkitd's
// --debugaddr does, until ctx ends. The address is opt-in: anyone who can
// reach it can read the daemon's profiles, so it is meant for 127.0.0.1 or
// a unix socket's peers, never a public interface.
func serveDebug(ctx context.Context, addr string) (func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--debugaddr %s: %w", addr, err)
	}
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
	bklog.L.Infof("debug handlers listening at %s", l.Addr())
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			bklog.L.WithError(err).Warn("debug server stopped")
		}
	}()
	return func() { _ = srv.Shutdown(context.WithoutCancel(ctx)) }, nil
}
