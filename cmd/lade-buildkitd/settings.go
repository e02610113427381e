package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/cmd/buildkitd/config"
	sessionauth "github.com/moby/buildkit/session/auth"
	"github.com/moby/buildkit/util/appdefaults"
	"github.com/moby/buildkit/util/archutil"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/resolver/limited"
	"github.com/moby/buildkit/util/tracing"
	"github.com/moby/buildkit/util/tracing/detect"
	"github.com/moby/buildkit/util/tracing/transform"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// applySystemConfig applies [system]: the platforms cache age, the
// registry concurrency limit and the session auth timeout.
func applySystemConfig(sc *config.SystemConfig) error {
	if sc == nil {
		return nil
	}
	if v := sc.PlatformsCacheMaxAge; v != nil {
		archutil.CacheMaxAge = v.Duration
	}
	if v := sc.MaxRegistryConcurrency; v != nil {
		if *v <= 0 {
			return fmt.Errorf("maxRegistryConcurrency must be greater than zero; set to %d in the configuration file", *v)
		}
		limited.SetMaxConcurrency(int64(*v))
	}
	if v := sc.SessionAuthTimeout; v != nil {
		sessionauth.SessionAuthTimeout = v.Duration
	}
	return nil
}

// serveTraces serves OTLP traces that build steps send on the socket path
// ([otel] socketPath, --otel-socket-path): they join the build history's
// trace, and the OTEL exporter when OTEL_* variables configure one. It
// returns the socket for the workers to pass to build steps.
func serveTraces(path string) (string, error) {
	exp, err := detect.NewSpanExporter(context.Background())
	if err != nil {
		return "", err
	}
	var tc tracing.MultiSpanExporter
	if detect.Recorder != nil {
		tc = append(tc, detect.Recorder)
	}
	if !detect.IsNoneSpanExporter(exp) {
		tc = append(tc, exp)
	}
	if len(tc) == 0 {
		return "", nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("trace socket %s: %w", path, err)
	}
	l, err := debugListener("unix://" + path)
	if err != nil {
		return "", fmt.Errorf("creating trace controller listener on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o666); err != nil { // build steps run as any user
		_ = l.Close()
		return "", err
	}
	server := grpc.NewServer()
	tracev1.RegisterTraceServiceServer(server, &traceCollector{exporter: tc})
	go func() { _ = server.Serve(l) }()
	return path, nil
}

// traceCollector is the OTLP trace service of the trace socket.
type traceCollector struct {
	tracev1.UnimplementedTraceServiceServer
	exporter sdktrace.SpanExporter
}

// Export hands the received spans to the exporter.
func (t *traceCollector) Export(ctx context.Context, req *tracev1.ExportTraceServiceRequest) (*tracev1.ExportTraceServiceResponse, error) {
	if err := t.exporter.ExportSpans(ctx, transform.Spans(req.GetResourceSpans())); err != nil {
		return nil, err
	}
	return &tracev1.ExportTraceServiceResponse{}, nil
}

// loadProvenanceEnv reads the JSON files of the provenance environment
// directory (provenanceEnvDir, default /etc/buildkit/provenance.d) into
// the environment recorded in SLSA provenance, as buildkitd does.
func loadProvenanceEnv(dir string) (map[string]any, error) {
	if dir == "" {
		dir = filepath.Join(appdefaults.ConfigDir, "provenance.d")
	}
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	env := map[string]any{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(data, &env); err != nil {
			return nil, fmt.Errorf("failed to parse provenance environment %s: %w", filepath.Join(dir, e.Name()), err)
		}
	}
	bklog.L.Debugf("provenance environment from %s: %d keys", dir, len(env))
	return env, nil
}
