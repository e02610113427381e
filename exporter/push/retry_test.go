package push

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lade-build/lade/internal/testutil"
	"github.com/lade-build/lade/progress"
)

// failFirst returns a fault failing the first n requests that match with
// status (or dropping them when status is 0), and a counter of matches.
func failFirst(n int, status int, match func(*http.Request) bool) (testutil.Fault, *atomic.Int32) {
	var seen atomic.Int32
	return func(r *http.Request) (int, bool) {
		if !match(r) || int(seen.Add(1)) > n {
			return 0, false
		}
		return status, status == 0
	}, &seen
}

// isUploadPUT matches the PUT that sends a blob's bytes.
func isUploadPUT(r *http.Request) bool {
	return r.Method == http.MethodPut && testutil.RequestKind(r) == testutil.KindBlobUpload
}

func TestPushRetriesInjected500s(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	store := newStore(t)
	img := writeImage(t, store)
	fault, seen := failFirst(2, http.StatusInternalServerError, isUploadPUT)
	reg.SetFault(fault)
	rec := &progress.Recorder{}
	opts := fastRetries
	opts.Progress = rec
	if err := Push(context.Background(), store, img.root, reg.Host+"/lade/retry:v1", opts); err != nil {
		t.Fatalf("Push: %v", err)
	}
	if n := reg.Uploads(); n != 5 {
		t.Fatalf("%d blobs uploaded, want 5", n)
	}
	if n := reg.Count(http.MethodPut, testutil.KindBlobUpload); n != 7 || seen.Load() != 7 {
		t.Fatalf("%d upload PUTs, want 5 + 2 retried", n)
	}
	for id, s := range finalStatuses(rec) {
		if s != StatusPushed {
			t.Errorf("%s: %q", id, s)
		}
	}
}

func TestPushRetriesDroppedConnection(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	store := newStore(t)
	img := writeImage(t, store)
	base := img.blobs[0].Digest.String()
	fault, _ := failFirst(1, 0, func(r *http.Request) bool {
		return isUploadPUT(r) && r.URL.Query().Get("digest") == base
	})
	reg.SetFault(fault)
	if err := Push(context.Background(), store, img.root, reg.Host+"/lade/drop:v1", fastRetries); err != nil {
		t.Fatalf("Push: %v", err)
	}
	if n := reg.Uploads(); n != 5 {
		t.Fatalf("%d blobs uploaded, want 5", n)
	}
}

func TestPushPermanentFailure(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	store := newStore(t)
	img := writeImage(t, store)
	base := img.blobs[0].Digest.String()
	var mu sync.Mutex
	puts := 0
	reg.SetFault(func(r *http.Request) (int, bool) {
		if isUploadPUT(r) && r.URL.Query().Get("digest") == base {
			mu.Lock()
			puts++
			mu.Unlock()
			return http.StatusInternalServerError, false
		}
		return 0, false
	})
	rec := &progress.Recorder{}
	opts := fastRetries
	opts.MaxAttempts = 3
	opts.Progress = rec
	err := Push(context.Background(), store, img.root, reg.Host+"/lade/broken:v1", opts)
	if err == nil {
		t.Fatal("Push succeeded against a registry failing every upload")
	}
	t.Logf("error: %v", err)
	for _, want := range []string{"layer " + base, "giving up after 3 attempts", "500 Internal Server Error", "injected fault", "PUT http://"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if strings.Contains(err.Error(), "_state=") {
		t.Errorf("error quotes the upload URL's query")
	}
	var reqErr *RequestError
	if !errors.As(err, &reqErr) || reqErr.StatusCode != http.StatusInternalServerError {
		t.Errorf("error is not a *RequestError with status 500: %#v", reqErr)
	}
	if puts != 3 {
		t.Errorf("%d upload attempts, want 3", puts)
	}
	if s := finalStatuses(rec)["push "+base]; !strings.HasPrefix(s, "error: ") {
		t.Errorf("progress status of the failed layer: %q", s)
	}
	if n := reg.Count(http.MethodPut, testutil.KindManifest); n != 0 {
		t.Errorf("%d manifests pushed over a missing layer", n)
	}
}

func TestPullRetries(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	store := newStore(t)
	img := writeImage(t, store)
	ref := reg.Host + "/lade/pull:v1"
	if err := Push(context.Background(), store, img.root, ref, fastRetries); err != nil {
		t.Fatal(err)
	}
	fault, seen := failFirst(3, http.StatusServiceUnavailable, func(r *http.Request) bool {
		return r.Method == http.MethodGet && testutil.RequestKind(r) == testutil.KindBlob
	})
	reg.SetFault(fault)
	fresh := newStore(t)
	root, err := Pull(context.Background(), ref, fresh, fastRetries)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if root.Digest != img.root.Digest || seen.Load() < 4 {
		t.Fatalf("root %s, %d blob GETs", root.Digest, seen.Load())
	}
	requireAll(t, fresh, img)
}

// flakyServer answers the first fails requests to each path with status,
// then 200 "ok"; it counts requests per method.
func flakyServer(t *testing.T, fails int, status int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if int(n.Add(1)) <= fails {
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"errors":[{"code":"UNAVAILABLE"}]}`, status)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRetryTransport(t *testing.T) {
	for _, tc := range []struct {
		name          string
		method        string
		fails, status int
		wantCalls     int32
		wantErr       string
	}{
		{"get recovers", http.MethodGet, 2, 503, 3, ""},
		{"head recovers from 429", http.MethodHead, 1, 429, 2, ""},
		{"get gives up", http.MethodGet, 10, 500, 4, "after 4 attempts"},
		{"404 is final", http.MethodGet, 1, 404, 1, ""},
		{"put goes once", http.MethodPut, 1, 502, 1, "registry answered 502 Bad Gateway"},
		{"501 is final", http.MethodGet, 1, 501, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, calls := flakyServer(t, tc.fails, tc.status)
			client := &http.Client{Transport: &retryTransport{next: http.DefaultTransport, attempts: 4, delay: time.Millisecond}}
			req, _ := http.NewRequest(tc.method, srv.URL+"/v2/x?secret=1", strings.NewReader(""))
			resp, err := client.Do(req)
			if resp != nil {
				resp.Body.Close()
			}
			if calls.Load() != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls.Load(), tc.wantCalls)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
			var reqErr *RequestError
			if errors.As(err, &reqErr) && strings.Contains(reqErr.Error(), "secret=1") {
				t.Errorf("error quotes the query: %v", reqErr)
			}
		})
	}
}

func TestRetryTransportConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	client := &http.Client{Transport: &retryTransport{next: http.DefaultTransport, attempts: 3, delay: time.Millisecond}}
	_, err := client.Get(url + "/v2/")
	var reqErr *RequestError
	if !errors.As(err, &reqErr) || reqErr.Attempts != 3 || !strings.Contains(err.Error(), "connection failed") {
		t.Fatalf("error %v", err)
	}
	if retryableAtBlobLevel(err) {
		t.Fatal("an exhausted GET is retried again at the blob level")
	}
}

func TestBackoff(t *testing.T) {
	for attempt := 1; attempt < 40; attempt++ {
		d := backoff(100*time.Millisecond, attempt, nil)
		if d <= 0 || d > maxRetryDelay {
			t.Fatalf("attempt %d: %s", attempt, d)
		}
	}
	resp := &http.Response{Header: http.Header{"Retry-After": {"3"}}}
	if d := backoff(time.Millisecond, 1, resp); d < 3*time.Second {
		t.Fatalf("Retry-After ignored: %s", d)
	}
	resp.Header.Set("Retry-After", "3600")
	if d := backoff(time.Millisecond, 1, resp); d != maxRetryDelay {
		t.Fatalf("Retry-After not capped: %s", d)
	}
}

func TestRetryableAtBlobLevel(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&RequestError{StatusCode: 500}, true},
		{&RequestError{StatusCode: 500, exhausted: true}, false},
		{context.Canceled, false},
		{errors.New("unexpected commit digest"), false},
		{errors.Join(errors.New("copy"), errors.ErrUnsupported), false},
	} {
		if got := retryableAtBlobLevel(tc.err); got != tc.want {
			t.Errorf("retryableAtBlobLevel(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestPushConcurrencyBound(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	store := newStore(t)
	img := writeImage(t, store)
	var inFlight, peak atomic.Int32
	reg.SetFault(func(r *http.Request) (int, bool) {
		if isUploadPUT(r) {
			n := inFlight.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(30 * time.Millisecond)
			inFlight.Add(-1)
		}
		return 0, false
	})
	opts := fastRetries
	opts.Concurrency = 2
	if err := Push(context.Background(), store, img.root, reg.Host+"/lade/bound:v1", opts); err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p > 2 || p < 1 {
		t.Fatalf("peak of %d uploads at once with Concurrency 2", p)
	}
}

func TestPushCancelStopsRetries(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	store := newStore(t)
	img := writeImage(t, store)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg.SetFault(func(r *http.Request) (int, bool) {
		if isUploadPUT(r) {
			cancel()
			return http.StatusServiceUnavailable, false
		}
		return 0, false
	})
	opts := Options{RetryDelay: time.Second, MaxAttempts: 10}
	start := time.Now()
	err := Push(ctx, store, img.root, reg.Host+"/lade/cancel:v1", opts)
	// The registry's 503 and the cancellation race: either error may come
	// back, but no upload may be retried once the push is cancelled.
	if err == nil || (!errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "503")) {
		t.Fatalf("Push after cancel: %v, want the cancellation or the 503", err)
	}
	if strings.Contains(err.Error(), "giving up after") {
		t.Fatalf("Push retried after the cancel: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("cancelled push took %s", d)
	}
}

// TestPushSlowRegistry: a registry answering slowly still gets the image;
// one that stalls past the response timeout fails each attempt and the push
// ends with a clear timeout error, no manifest pushed.
func TestPushSlowRegistry(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	store := newStore(t)
	img := writeImage(t, store)
	reg.SetFault(func(r *http.Request) (int, bool) {
		time.Sleep(50 * time.Millisecond)
		return 0, false
	})
	opts := fastRetries
	opts.ResponseTimeout = 2 * time.Second
	if err := Push(context.Background(), store, img.root, reg.Host+"/lade/slow:v1", opts); err != nil {
		t.Fatalf("slow registry: %v", err)
	}
	reg.SetFault(func(r *http.Request) (int, bool) {
		if isUploadPUT(r) {
			time.Sleep(1500 * time.Millisecond)
		}
		return 0, false
	})
	reg.ResetCounts()
	opts.ResponseTimeout = 300 * time.Millisecond
	opts.MaxAttempts = 2
	err := Push(context.Background(), store, img.root, reg.Host+"/lade/stalled:v1", opts)
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("stalled registry: %v, want a timeout error", err)
	}
	if n := reg.Count(http.MethodPut, testutil.KindManifest); n != 0 {
		t.Errorf("%d manifests pushed over missing layers", n)
	}
}
