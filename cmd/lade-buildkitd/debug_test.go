package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/solver/bboltcachestorage"
	"github.com/moby/buildkit/util/cachedigest"
	"github.com/moby/buildkit/util/db/compaction"
	digest "github.com/opencontainers/go-digest"
)

// debugFixture is a debug mux over a real cache.db (with a manual-only
// compaction policy, as the daemon attaches when --debugaddr is set) and
// a cache-debug.db, holding a root key with a result and a child linked
// to it.
type debugFixture struct {
	srv         *httptest.Server
	dbPath      string
	root, child digest.Digest
	selector    digest.Digest
	// linkDigest is the child link's digest as the store reports it,
	// relative to the output: the digest of "<child>@0".
	linkDigest digest.Digest
}

func newDebugFixture(t *testing.T) *debugFixture {
	t.Helper()
	dir := t.TempDir()
	f := &debugFixture{dbPath: filepath.Join(dir, "cache.db")}
	digests, err := cachedigest.NewDB(filepath.Join(dir, "cache-debug.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = digests.Close() })
	f.root, _ = digests.FromBytes([]byte("root op"), cachedigest.TypeString)
	f.child, _ = digests.FromBytes([]byte("child op"), cachedigest.TypeString)
	f.selector, _ = digests.FromBytes([]byte("/src"), cachedigest.TypeString)
	f.linkDigest, _ = digests.FromBytes([]byte(f.child.String()+"@0"), cachedigest.TypeString)
	digests.Wait()

	policy := compaction.DefaultConfig()
	policy.ManualOnly, policy.IdleTimeout = true, 10*time.Millisecond
	store, err := bboltcachestorage.NewStore(f.dbPath, policy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.AddResult(f.root.String(), solver.CacheResult{ID: "result-1", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	link := solver.CacheInfoLink{Input: 0, Digest: f.child, Selector: f.selector}
	if err := store.AddLink(f.root.String(), link, "child-key"); err != nil {
		t.Fatal(err)
	}
	cache := cacheDebug{
		store:   func() solver.CacheKeyStorage { return store },
		digests: func() *cachedigest.DB { return digests },
	}
	f.srv = httptest.NewServer(newDebugMux(cache))
	t.Cleanup(f.srv.Close)
	return f
}

// do sends a request and returns the status and body.
func (f *debugFixture) do(t *testing.T, method, path, accept string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dt, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(dt)
}

// expect checks the status and that the body holds every want.
func (f *debugFixture) expect(t *testing.T, method, path, accept string, body io.Reader, code int, want ...string) string {
	t.Helper()
	got, dt := f.do(t, method, path, accept, body)
	if got != code {
		t.Fatalf("%s %s: status %d, want %d; body %q", method, path, got, code, dt)
	}
	for _, w := range want {
		if !strings.Contains(dt, w) {
			t.Errorf("%s %s: body lacks %q:\n%s", method, path, w, dt)
		}
	}
	return dt
}

// TestDebugCacheEndpoints: /debug/cache/{all,lookup,store,load} answer as
// buildkitd's, in plain text and JSON.
func TestDebugCacheEndpoints(t *testing.T) {
	f := newDebugFixture(t)

	f.expect(t, "GET", "/debug/cache/all", "", nil, 200,
		f.root.String()+" (string):\n  data: root op\n", f.selector.String()+" (string):\n  data: /src\n")
	var all []cachedigest.Record
	dt := f.expect(t, "GET", "/debug/cache/all", "application/json", nil, 200)
	if err := json.Unmarshal([]byte(dt), &all); err != nil || len(all) != 4 {
		t.Errorf("JSON /debug/cache/all: %d records, %v:\n%s", len(all), err, dt)
	}

	f.expect(t, "GET", "/debug/cache/lookup?digest="+f.child.String(), "", nil, 200, f.child.String()+" (string):\n  data: child op\n")
	var rec cachedigest.Record
	dt = f.expect(t, "GET", "/debug/cache/lookup?digest="+f.root.String(), "application/json", nil, 200)
	if err := json.Unmarshal([]byte(dt), &rec); err != nil || rec.Digest != f.root || rec.Type != cachedigest.TypeString {
		t.Errorf("JSON lookup: %+v, %v", rec, err)
	}
	f.expect(t, "GET", "/debug/cache/lookup?digest="+string(rootDigest), "", nil, 200, "data: /\n")
	f.expect(t, "GET", "/debug/cache/lookup", "", nil, 400, "digest query parameter is required")
	f.expect(t, "GET", "/debug/cache/lookup?digest=nope", "", nil, 400, "invalid digest")
	f.expect(t, "GET", "/debug/cache/lookup?digest="+digest.FromString("absent").String(), "", nil, 500, "not found")

	f.expect(t, "GET", "/debug/cache/store", "", nil, 200,
		"ID: 1\nDigest: "+f.root.String()+"\nChildren:\n  Input 0:\t 2\nPlaintexts:\n"+f.root.String()+" (string):",
		"ID: 2\nParents:\n  Input 0:\t1\t"+f.linkDigest.String()+"\n    Selector: "+f.selector.String()+"\nPlaintexts:\n",
		"data: "+f.child.String()+"@0\n", "data: /src\n")
	var recs []map[string]any
	dt = f.expect(t, "GET", "/debug/cache/store", "application/json", nil, 200)
	if err := json.Unmarshal([]byte(dt), &recs); err != nil || len(recs) != 2 || recs[0]["digest"] != f.root.String() ||
		recs[1]["parents"] == nil || recs[1]["debug"] == nil {
		t.Errorf("JSON /debug/cache/store: %v:\n%s", err, dt)
	}
	f.expect(t, "POST", "/debug/cache/store", "", nil, 405)

	config := `{"layers":[],"records":[{"digest":"` + f.root.String() + `"},` +
		`{"digest":"` + f.child.String() + `","inputs":[[{"selector":"` + f.selector.String() + `","link":0}]]}]}`
	f.expect(t, "POST", "/debug/cache/load", "", strings.NewReader(config), 200,
		"ID: 1\nDigest: "+f.root.String()+"\n", "ID: 2\nParents:\n  Input 0:\t1\t"+f.child.String()+"\n", "data: child op\n")
	f.expect(t, "POST", "/debug/cache/load", "", strings.NewReader("{"), 500, "failed to load cache")
	f.expect(t, "GET", "/debug/cache/load", "", nil, 405)
}

// TestDebugCacheStoreNotReady: before the daemon opens cache.db the store
// endpoint says so instead of failing oddly.
func TestDebugCacheStoreNotReady(t *testing.T) {
	srv := httptest.NewServer(newDebugMux(cacheDebug{store: (&debugCacheStorage{}).get, digests: cachedigest.GetDefaultDB}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/debug/cache/store")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Errorf("status %d, want 500", resp.StatusCode)
	}
}

// TestDebugCompaction: GET lists cache.db with its policy and a reason;
// POST runs a manual attempt and streams it to a "completed:" line.
func TestDebugCompaction(t *testing.T) {
	f := newDebugFixture(t)
	var statuses map[string]compactionStatus
	dt := f.expect(t, "GET", "/debug/compaction", "", nil, 200)
	if err := json.Unmarshal([]byte(dt), &statuses); err != nil {
		t.Fatalf("%v:\n%s", err, dt)
	}
	st, ok := statuses[f.dbPath]
	if !ok || !st.Config.ManualOnly || st.Stats.Size == 0 || st.Reason == "" || st.Available == 0 {
		t.Errorf("status of %s: %+v (ok %v)\n%s", f.dbPath, st, ok, dt)
	}
	f.expect(t, "POST", "/debug/compaction?database=/nope", "", nil, 404, "unknown database")
	dt = f.expect(t, "POST", "/debug/compaction?database="+url.QueryEscape(f.dbPath), "", nil, 200,
		"manual attempt requested; this is not a dry run\n", "completed: compacted=")
	if !strings.HasSuffix(strings.TrimSpace(dt), `error=""`) {
		t.Errorf("attempt did not end cleanly:\n%s", dt)
	}
}

// TestDebugFlight: the flight recorder starts, refuses a second start or a
// period change while running, hands out a Go execution trace, stops.
func TestDebugFlight(t *testing.T) {
	f := newDebugFixture(t)
	const p = "/debug/flight/trace"
	f.expect(t, "GET", p, "", nil, 500, "not running")
	f.expect(t, "POST", p+"/set_period?period=bogus", "", nil, 400, "invalid flight recorder period")
	f.expect(t, "POST", p+"/set_period?period=2s", "", nil, 200)
	f.expect(t, "POST", p+"/start", "", nil, 200)
	f.expect(t, "POST", p+"/start", "", nil, 409, "already running")
	f.expect(t, "POST", p+"/set_period?period=5s", "", nil, 412, "stop it")
	time.Sleep(50 * time.Millisecond)
	dt := f.expect(t, "GET", p, "", nil, 200)
	if !bytes.HasPrefix([]byte(dt), []byte("go 1.")) || len(dt) < 1000 {
		t.Errorf("trace: %d bytes starting %q, want a Go execution trace", len(dt), dt[:min(len(dt), 16)])
	}
	f.expect(t, "GET", p+"/start", "", nil, 405)
	f.expect(t, "POST", p+"/stop", "", nil, 200)
	f.expect(t, "POST", p+"/stop", "", nil, 409, "not running")
}
