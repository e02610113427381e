package main

// The environment variables of tracing that stock buildkitd honours through
// packages its main imports for their side effects; lade-buildkitd imports
// the same packages so that an environment set up for buildkitd works here:
//
//   - detect/jaeger registers the Jaeger trace exporter with BuildKit's
//     detect, selected by OTEL_TRACES_EXPORTER=jaeger, JAEGER_TRACE
//     (host:port of a UDP agent, or an http(s) collector URL),
//     OTEL_EXPORTER_JAEGER_AGENT_HOST or OTEL_EXPORTER_JAEGER_ENDPOINT
//     (with OTEL_EXPORTER_JAEGER_HOST and _PORT). Without it
//     OTEL_TRACES_EXPORTER=jaeger stopped the daemon at start ("unsupported
//     opentelemetry exporter jaeger") and JAEGER_TRACE was ignored.
//   - childprocess registers an appcontext initializer that makes the
//     daemon's root context a child of TRACEPARENT and TRACESTATE, for a
//     daemon started inside a traced job. As in buildkitd, what is logged
//     with that context (bklog.G) carries the trace's traceID and spanID;
//     the spans of API calls and builds stay in their clients' traces.
//     (executor/oci links the package too; the import keeps it whatever
//     BuildKit's packages import.) It takes effect only because main runs
//     under appcontext.Context(), as buildkitd's does.
import (
	_ "github.com/moby/buildkit/util/tracing/childprocess"
	_ "github.com/moby/buildkit/util/tracing/detect/jaeger"
)
