package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/tracing"
	"github.com/moby/buildkit/util/tracing/detect"
	"github.com/moby/buildkit/util/tracing/transform"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// telemetry is the daemon's tracing and metrics, as buildkitd's: spans of
// API calls and builds go to the build history's recorder and, when OTEL_*
// variables configure one, to an OpenTelemetry exporter; build steps send
// theirs to the trace socket; metrics go to Prometheus's registry.
type telemetry struct {
	provider  *sdktrace.TracerProvider
	meter     *sdkmetric.MeterProvider
	collector tracing.MultiSpanExporter
	socket    *grpc.Server
}

// newTelemetry sets up the tracer provider, the exporters and the trace
// socket at socketPath ([otel] socketPath, --otel-socket-path).
func newTelemetry(ctx context.Context, socketPath string) (*telemetry, error) {
	// The tracer provider and the collector (the controller's and the
	// trace socket's) each get an exporter of their own, as in buildkitd:
	// the controller shuts the collector down when it closes, before the
	// provider is flushed, and a shared exporter would drop the daemon's
	// last spans.
	var exps [2]sdktrace.SpanExporter
	for i := range exps {
		exp, err := detect.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTEL exporter: %w", err)
		}
		exps[i] = exp
	}
	t := &telemetry{collector: tracing.MultiSpanExporter{detect.Recorder}}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(detect.Resource()), sdktrace.WithSyncer(detect.Recorder)}
	if !detect.IsNoneSpanExporter(exps[0]) {
		opts = append(opts, sdktrace.WithBatcher(exps[0]))
		t.collector = append(t.collector, exps[1])
	}
	t.provider = sdktrace.NewTracerProvider(opts...)
	var err error
	if t.meter, err = newMeterProvider(ctx); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(socketPath), 0o700); err != nil {
		return nil, fmt.Errorf("trace socket %s: %w", socketPath, err)
	}
	l, err := debugListener("unix://" + socketPath)
	if err != nil {
		return nil, fmt.Errorf("creating trace controller listener on %s: %w", socketPath, err)
	}
	if err := os.Chmod(socketPath, 0o666); err != nil { // build steps run as any user
		_ = l.Close()
		return nil, err
	}
	t.socket = grpc.NewServer()
	tracev1.RegisterTraceServiceServer(t.socket, &traceCollector{exporter: t.collector})
	go func() { _ = t.socket.Serve(l) }()
	return t, nil
}

// statsHandler traces the API's gRPC calls, continuing the clients' traces.
func (t *telemetry) statsHandler() grpc.ServerOption {
	return grpc.StatsHandler(tracing.ServerStatsHandler(
		otelgrpc.WithTracerProvider(t.provider),
		otelgrpc.WithMeterProvider(t.meter),
		otelgrpc.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
	))
}

// close stops the trace socket and flushes the exporters, for at most 5s.
func (t *telemetry) close(ctx context.Context) {
	t.socket.Stop()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = t.provider.Shutdown(ctx)
	_ = t.meter.Shutdown(ctx)
}

// newMeterProvider returns buildkitd's meter provider: metrics for the
// Prometheus registry served at the debug address's /metrics, and for the
// OTEL metric exporter when OTEL_* variables configure one; build
// durations are exponential histograms by status.
func newMeterProvider(ctx context.Context) (*sdkmetric.MeterProvider, error) {
	opts := []sdkmetric.Option{
		sdkmetric.WithResource(detect.Resource()),
		sdkmetric.WithView(sdkmetric.NewView(
			sdkmetric.Instrument{Name: "buildkit.build.duration", Kind: sdkmetric.InstrumentKindHistogram},
			sdkmetric.Stream{
				Aggregation:     sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20},
				AttributeFilter: attribute.NewAllowKeysFilter("status"),
			})),
	}
	if r, err := prometheus.New(); err != nil {
		bklog.L.WithError(err).Error("failed prometheus metrics configuration")
	} else {
		opts = append(opts, sdkmetric.WithReader(r))
	}
	exp, err := detect.NewMetricExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTEL metric exporter: %w", err)
	}
	if !detect.IsNoneMetricExporter(exp) {
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	return sdkmetric.NewMeterProvider(opts...), nil
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
