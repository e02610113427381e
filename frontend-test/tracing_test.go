//go:build integration

package frontendtest

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	collectorv1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// tracingDockerfile is a small build with one RUN step, so the daemon
// traces a solve, an executor run and an export.
const tracingDockerfile = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo traced > /traced.txt"]
`

// TestTracingOTLPHTTP starts each daemon with the OTLP/HTTP exporter
// configured by OTEL_* variables and TRACEPARENT in its environment, as a
// process started inside a traced job gets it, runs a build and checks that
// the daemon's own spans reach the collector (told by service name; they
// were lost at shutdown while the controller's trace collector shared the
// tracer provider's exporter) and that the daemon joins the TRACEPARENT's
// trace as buildkitd does (BuildKit's util/tracing/childprocess): its root
// context's log lines ("stopping server") carry the trace's ID. The
// build's spans stay in buildctl's trace in both daemons, so none of them
// is in TRACEPARENT's.
func TestTracingOTLPHTTP(t *testing.T) {
	for _, kind := range []string{lade, stock} {
		t.Run(kind, func(t *testing.T) {
			col := newOTLPCollector(t)
			traceID := randomHex(t, 16)
			d := tracedBuild(t, kind,
				"OTEL_TRACES_EXPORTER=otlp",
				"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="+col.URL+"/v1/traces",
				"TRACEPARENT=00-"+traceID+"-"+randomHex(t, 8)+"-01")
			spans, inTrace, services := col.spans(traceID)
			if spans == 0 {
				t.Fatalf("no span reached the OTLP/HTTP collector (%d requests)", col.requests())
			}
			// buildctl's spans come through the daemon too (BuildKit's
			// delegated exporter), so the daemon's own are told by name.
			if !slices.Contains(services, kind) {
				t.Errorf("no span of service %q among those of %q: the daemon's own spans were lost", kind, services)
			}
			// lade's exporter opens the span buildkitd's image writer does.
			if !col.hasSpan(kind, "export layers") {
				t.Errorf("no %q span of service %q", "export layers", kind)
			}
			stopping := logLine(d.log.String(), "stopping server")
			if !strings.Contains(stopping, "traceID="+traceID) {
				t.Errorf("the daemon's %q line is not in the TRACEPARENT's trace %s: %q", "stopping server", traceID, stopping)
			}
			t.Logf("%d spans (%d in trace %s); %s", spans, inTrace, traceID, stopping)
		})
	}
}

// TestTracingJaeger starts each daemon with a Jaeger agent on UDP
// configured as buildkitd takes it (JAEGER_TRACE=host:port, or
// OTEL_TRACES_EXPORTER=jaeger with OTEL_EXPORTER_JAEGER_HOST and _PORT),
// runs a build and checks that thrift datagrams arrive carrying the
// daemon's service name (its binary's name, as BuildKit's detect.Resource
// reports it).
func TestTracingJaeger(t *testing.T) {
	for _, kind := range []string{lade, stock} {
		for _, variant := range []string{"JAEGER_TRACE", "OTEL_TRACES_EXPORTER"} {
			t.Run(kind+"/"+variant, func(t *testing.T) {
				agent := newUDPAgent(t)
				host, port, _ := net.SplitHostPort(agent.LocalAddr().String())
				env := []string{"JAEGER_TRACE=" + host + ":" + port}
				if variant == "OTEL_TRACES_EXPORTER" {
					env = []string{"OTEL_TRACES_EXPORTER=jaeger", "OTEL_EXPORTER_JAEGER_HOST=" + host, "OTEL_EXPORTER_JAEGER_PORT=" + port}
				}
				tracedBuild(t, kind, env...)
				agent.await(t, []byte(kind), 15*time.Second)
			})
		}
	}
}

// tracedBuild starts a daemon of kind with env added to its environment,
// runs a small build and stops the daemon, which flushes its batch span
// processor, and returns it.
func tracedBuild(t *testing.T, kind string, env ...string) *daemon {
	t.Helper()
	d := startLadeWith(t, ladeRun{kind: kind, env: env,
		// its own trace socket, as startDaemon gives each daemon
		args: []string{"--otel-socket-path", filepath.Join(t.TempDir(), "otel.sock")}})
	d.mustBuild(t, contextDir(t, tracingDockerfile, nil), "--output", "type=oci,dest="+t.TempDir()+"/out.tar")
	d.stop(t)
	return d
}

// logLine returns the first line of log containing s.
func logLine(log, s string) string {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

// udpAgent is a UDP listener standing in for a Jaeger agent.
type udpAgent struct {
	net.PacketConn
	got chan []byte
}

// newUDPAgent listens on 127.0.0.1 until the test ends.
func newUDPAgent(t *testing.T) *udpAgent {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	a := &udpAgent{PacketConn: pc, got: make(chan []byte, 256)}
	go func() {
		defer close(a.got)
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			a.got <- bytes.Clone(buf[:n])
		}
	}()
	return a
}

// await fails the test unless a datagram containing want (thrift strings
// are raw bytes) arrives within timeout.
func (a *udpAgent) await(t *testing.T, want []byte, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for datagrams := 0; ; {
		select {
		case b, ok := <-a.got:
			if !ok {
				t.Fatal("the UDP listener closed")
			}
			datagrams++
			if bytes.Contains(b, want) {
				t.Logf("datagram %d (%d bytes) names service %q", datagrams, len(b), want)
				return
			}
		case <-deadline:
			t.Fatalf("%d datagrams reached the Jaeger agent address in %s, none naming service %q", datagrams, timeout, want)
		}
	}
}

// otlpCollector is an OTLP/HTTP trace receiver keeping what it is sent.
type otlpCollector struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*collectorv1.ExportTraceServiceRequest
}

// newOTLPCollector serves POST /v1/traces (protobuf, optionally gzipped)
// until the test ends.
func newOTLPCollector(t *testing.T) *otlpCollector {
	c := &otlpCollector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.Error(w, "only POST /v1/traces", http.StatusNotFound)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		data, err := io.ReadAll(body)
		req := &collectorv1.ExportTraceServiceRequest{}
		if err == nil {
			err = proto.Unmarshal(data, req)
		}
		if err != nil {
			t.Errorf("OTLP request: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.reqs = append(c.reqs, req)
		c.mu.Unlock()
		resp, _ := proto.Marshal(&collectorv1.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(resp)
	}))
	t.Cleanup(c.Close)
	return c
}

// requests returns how many export requests arrived.
func (c *otlpCollector) requests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.reqs)
}

// spans counts the spans received and those in the trace traceID (hex),
// and returns the service names of their resources.
func (c *otlpCollector) spans(traceID string) (all, inTrace int, services []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, req := range c.reqs {
		for _, rs := range req.GetResourceSpans() {
			for _, kv := range rs.GetResource().GetAttributes() {
				if name := kv.GetValue().GetStringValue(); kv.GetKey() == "service.name" && !slices.Contains(services, name) {
					services = append(services, name)
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					all++
					if hex.EncodeToString(s.GetTraceId()) == traceID {
						inTrace++
					}
				}
			}
		}
	}
	return all, inTrace, services
}

// hasSpan reports whether a span named name arrived from service.
func (c *otlpCollector) hasSpan(service, name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, req := range c.reqs {
		for _, rs := range req.GetResourceSpans() {
			if !slices.ContainsFunc(rs.GetResource().GetAttributes(), func(kv *commonv1.KeyValue) bool {
				return kv.GetKey() == "service.name" && kv.GetValue().GetStringValue() == service
			}) {
				continue
			}
			for _, ss := range rs.GetScopeSpans() {
				if slices.ContainsFunc(ss.GetSpans(), func(s *tracev1.Span) bool { return s.GetName() == name }) {
					return true
				}
			}
		}
	}
	return false
}

// randomHex returns n random bytes in hex.
func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
