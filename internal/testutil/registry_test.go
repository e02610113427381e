package testutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// get fetches url with optional basic auth and returns the status code.
func get(t *testing.T, client *http.Client, url, user, pass string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestRegistryPlain(t *testing.T) {
	r := StartRegistry(t, RegistryOptions{})
	if !strings.HasPrefix(r.Host, "127.0.0.1:") {
		t.Fatalf("Host = %q", r.Host)
	}
	if code := get(t, http.DefaultClient, "http://"+r.Host+"/v2/", "", ""); code != http.StatusOK {
		t.Fatalf("GET /v2/ = %d", code)
	}
	if n := r.Count(http.MethodGet, KindBase); n != 1 {
		t.Fatalf("Count(GET base) = %d, want 1", n)
	}
	r.SetFault(func(req *http.Request) (int, bool) { return http.StatusServiceUnavailable, false })
	if code := get(t, http.DefaultClient, "http://"+r.Host+"/v2/", "", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("faulted GET /v2/ = %d", code)
	}
	r.SetFault(func(req *http.Request) (int, bool) { return 0, true })
	if _, err := http.Get("http://" + r.Host + "/v2/"); err == nil {
		t.Fatal("dropped connection: no error")
	}
	r.SetFault(nil)
	r.ResetCounts()
	if n := r.Count(http.MethodGet, KindBase); n != 0 {
		t.Fatalf("after reset Count = %d", n)
	}
}

func TestRegistryAuthTLS(t *testing.T) {
	r := StartRegistry(t, RegistryOptions{Auth: true, TLS: true})
	pem, err := os.ReadFile(r.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CAFile holds no certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + r.Host + "/v2/"
	if code := get(t, client, url, "", ""); code != http.StatusUnauthorized {
		t.Fatalf("anonymous GET = %d, want 401", code)
	}
	if code := get(t, client, url, r.User, "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password GET = %d, want 401", code)
	}
	if code := get(t, client, url, r.User, r.Password); code != http.StatusOK {
		t.Fatalf("authenticated GET = %d, want 200", code)
	}
}

func TestRequestKind(t *testing.T) {
	for _, tc := range []struct{ method, url, want string }{
		{"GET", "/v2/", KindBase},
		{"HEAD", "/v2/a/b/blobs/sha256:00", KindBlob},
		{"POST", "/v2/a/blobs/uploads/", KindBlobUpload},
		{"POST", "/v2/a/blobs/uploads/?mount=sha256:00&from=b", KindBlobMount},
		{"PUT", "/v2/a/blobs/uploads/uuid?digest=sha256:00", KindBlobUpload},
		{"PUT", "/v2/a/manifests/latest", KindManifest},
		{"GET", "/v2/a/tags/list", KindOther},
	} {
		req, err := http.NewRequest(tc.method, "http://h"+tc.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := RequestKind(req); got != tc.want {
			t.Errorf("RequestKind(%s %s) = %q, want %q", tc.method, tc.url, got, tc.want)
		}
	}
}

func TestRun(t *testing.T) {
	if out := Run(t, "echo", "hi"); out != "hi\n" {
		t.Fatalf("Run = %q", out)
	}
	ft := &fakeTB{TB: t}
	func() {
		defer func() { _ = recover() }()
		RequireTool(ft, "definitely-not-a-lade-tool")
	}()
	if !strings.Contains(ft.msg, "definitely-not-a-lade-tool not installed: run hack/install-test-deps.sh") {
		t.Fatalf("RequireTool message = %q", ft.msg)
	}
}

// fakeTB records Fatalf instead of failing the real test.
type fakeTB struct {
	testing.TB
	msg string
}

// errFatal stops the helper like t.Fatalf's Goexit would.
var errFatal = errors.New("fatal")

// Helper does nothing.
func (f *fakeTB) Helper() {}

// Fatalf records the message and panics with errFatal.
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(errFatal)
}
