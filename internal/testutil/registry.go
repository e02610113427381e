package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// RegistryOptions configure StartRegistry. The zero value is a plain-HTTP
// registry without authentication.
type RegistryOptions struct {
	// Auth turns on htpasswd basic authentication with a generated user and
	// password (Registry.User, Registry.Password).
	Auth bool
	// TLS serves the registry over HTTPS with a self-signed certificate for
	// 127.0.0.1; Registry.CAFile holds the PEM certificate to trust.
	TLS bool
}

// Fault decides, for one request reaching the registry, whether to fail it:
// a non-zero status is answered at once (after reading the request body)
// with a registry-style JSON error; drop reads part of the body and then
// closes the connection without answering. (0, false) forwards the request.
type Fault func(r *http.Request) (status int, drop bool)

// Request kinds counted by Registry.Count.
const (
	KindBase       = "base"        // /v2/
	KindBlob       = "blob"        // /v2/<name>/blobs/<digest>
	KindBlobUpload = "blob-upload" // /v2/<name>/blobs/uploads/...
	KindBlobMount  = "blob-mount"  // POST /v2/<name>/blobs/uploads/?mount=...
	KindManifest   = "manifest"    // /v2/<name>/manifests/<reference>
	KindOther      = "other"       // anything else
)

// Registry is a running registry for one test: Debian's docker-registry
// listening on a private port, reached through a reverse proxy at Host that
// counts requests and can inject faults. It is stopped in t.Cleanup.
type Registry struct {
	// Host is "127.0.0.1:PORT", the address to use in image references.
	Host string
	// User and Password are the credentials when RegistryOptions.Auth is
	// set, empty otherwise.
	User, Password string
	// CAFile is the PEM certificate to trust when RegistryOptions.TLS is
	// set, empty otherwise.
	CAFile string

	mu      sync.Mutex
	fault   Fault
	counts  map[string]int
	uploads int
	mounts  int
}

// StartRegistry starts a registry for the test and waits (at most 10s) until
// it answers GET /v2/. The registry stores blobs under t.TempDir() and is
// killed when the test ends; its log is shown if the test failed.
func StartRegistry(t testing.TB, opts RegistryOptions) *Registry {
	t.Helper()
	dir := t.TempDir()
	r := &Registry{counts: map[string]int{}}
	htpasswd := ""
	if opts.Auth {
		r.User, r.Password = "lade", randomHex(t, 16)
		htpasswd = filepath.Join(dir, "htpasswd")
		line := Run(t, "htpasswd", "-Bbn", r.User, r.Password)
		if err := os.WriteFile(htpasswd, []byte(line), 0o600); err != nil {
			t.Fatalf("write htpasswd: %v", err)
		}
	}
	backend := startBackend(t, dir, htpasswd)
	target := &url.URL{Scheme: "http", Host: backend}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		// Keep the client's Host so the registry's Location headers point
		// back at the proxy.
		pr.Out.Host = pr.In.Host
	}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.serve(w, req, proxy)
	}))
	if opts.TLS {
		srv.StartTLS()
		r.CAFile = filepath.Join(dir, "ca.pem")
		block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		if err := os.WriteFile(r.CAFile, block, 0o644); err != nil {
			t.Fatalf("write CA file: %v", err)
		}
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	r.Host = strings.TrimPrefix(strings.TrimPrefix(srv.URL, "http://"), "https://")
	return r
}

// SetFault installs f for every later request; nil removes it. Safe to call
// while requests are in flight.
func (r *Registry) SetFault(f Fault) {
	r.mu.Lock()
	r.fault = f
	r.mu.Unlock()
}

// Count returns how many requests with method and kind (one of the Kind
// constants) reached the proxy, faulted ones included.
func (r *Registry) Count(method, kind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[method+" "+kind]
}

// Uploads returns how many blob uploads the registry completed (a PUT to
// an upload session answered 201 Created).
func (r *Registry) Uploads() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.uploads
}

// Mounts returns how many cross-repository blob mounts the registry
// completed (a POST with mount= answered 201 Created).
func (r *Registry) Mounts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mounts
}

// ResetCounts sets every counter back to zero.
func (r *Registry) ResetCounts() {
	r.mu.Lock()
	r.counts = map[string]int{}
	r.uploads, r.mounts = 0, 0
	r.mu.Unlock()
}

// serve counts req, applies the fault hook and forwards req to the registry.
func (r *Registry) serve(w http.ResponseWriter, req *http.Request, next http.Handler) {
	kind := RequestKind(req)
	r.mu.Lock()
	r.counts[req.Method+" "+kind]++
	fault := r.fault
	r.mu.Unlock()
	if fault != nil {
		if status, drop := fault(req); drop {
			dropConnection(w, req)
			return
		} else if status != 0 {
			_, _ = io.Copy(io.Discard, req.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}`)
			return
		}
	}
	sw := &statusWriter{ResponseWriter: w}
	next.ServeHTTP(sw, req)
	if sw.status != http.StatusCreated {
		return
	}
	r.mu.Lock()
	switch {
	case kind == KindBlobUpload && req.Method == http.MethodPut:
		r.uploads++
	case kind == KindBlobMount:
		r.mounts++
	}
	r.mu.Unlock()
}

// dropConnection reads up to 1 KiB of the request body, then closes the
// connection without a response.
func dropConnection(w http.ResponseWriter, req *http.Request) {
	_, _ = io.CopyN(io.Discard, req.Body, 1024)
	hj, ok := w.(http.Hijacker)
	if !ok { // HTTP/2: abort the stream instead.
		panic(http.ErrAbortHandler)
	}
	if conn, _, err := hj.Hijack(); err == nil {
		_ = conn.Close()
	}
}

// RequestKind classifies a registry API request by its path, as counted by
// Registry.Count.
func RequestKind(req *http.Request) string {
	p := req.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		return KindBase
	case strings.Contains(p, "/blobs/uploads"):
		if req.Method == http.MethodPost && req.URL.Query().Get("mount") != "" {
			return KindBlobMount
		}
		return KindBlobUpload
	case strings.Contains(p, "/blobs/"):
		return KindBlob
	case strings.Contains(p, "/manifests/"):
		return KindManifest
	}
	return KindOther
}

// statusWriter remembers the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader records code and forwards it.
func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200 and forwards b.
func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush forwards to the underlying writer when it can flush, so streamed
// responses are not held back.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}
