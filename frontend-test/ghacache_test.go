//go:build integration

package frontendtest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// ghaCache is a fake of GitHub's Actions cache service, API v2, the one
// BuildKit's type=gha backend uses when given url_v2: twirp JSON calls
// under /twirp/github.actions.results.api.v1.CacheService/ (CreateCacheEntry,
// FinalizeCacheEntryUpload, GetCacheEntryDownloadURL) authorized by the
// runtime token, with the entries' bytes in Azure Blob storage (Azurite)
// behind SAS URLs the service signs, as GitHub's service does. Its
// semantics are the service's: a key is written once (a second
// CreateCacheEntry is "already_exists"), only finalized entries are found,
// a lookup tries the exact key and then each restore key as a prefix,
// newest entry first, and an entry is finalized only with the size of
// the uploaded blob.
type ghaCache struct {
	URL   string // the url_v2 attribute
	Token string // the token attribute: a runtime token with one read-write scope

	azurite   *azurite
	container string
	mu        sync.Mutex
	entries   map[string]*ghaEntry
	seq       int
}

// ghaEntry is one cache entry.
type ghaEntry struct {
	version string
	blob    string
	seq     int // 0 until finalized, then the order of finalization
}

// startGHACache starts the fake on 127.0.0.1, storing blobs in a new
// container of az; it is stopped when the test ends.
func startGHACache(t *testing.T, az *azurite) *ghaCache {
	t.Helper()
	g := &ghaCache{azurite: az, container: "gha-cache", entries: map[string]*ghaEntry{}}
	g.Token = runtimeToken(t, `[{"Scope":"refs/heads/main","Permission":3}]`)
	cred, err := service.NewSharedKeyCredential(azuriteAccount, azuriteKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.NewClientWithSharedKeyCredential(az.accountURL+"/"+g.container, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(context.Background(), nil); err != nil {
		t.Fatalf("create Azurite container %s: %v", g.container, err)
	}
	srv := httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(srv.Close)
	g.URL = srv.URL + "/"
	return g
}

// runtimeToken returns an ACTIONS_RUNTIME_TOKEN-shaped JWT with access
// controls ac, valid for an hour (clients read it without checking the
// signature; the service compares it whole).
func runtimeToken(t *testing.T, ac string) string {
	t.Helper()
	claims, err := json.Marshal(map[string]any{"ac": ac, "nbf": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc(claims) + "." + enc([]byte("lade-test"))
}

// Keys returns the finalized entries' keys, sorted.
func (g *ghaCache) Keys() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for k, e := range g.entries {
		if e.seq != 0 {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// ghaRequest is the body of every call (fields unused by a call are empty).
type ghaRequest struct {
	Key         string   `json:"key"`
	RestoreKeys []string `json:"restore_keys"`
	Version     string   `json:"version"`
	SizeBytes   int64    `json:"size_bytes"`
}

func (g *ghaCache) serve(w http.ResponseWriter, r *http.Request) {
	const prefix = "/twirp/github.actions.results.api.v1.CacheService/"
	method, ok := strings.CutPrefix(r.URL.Path, prefix)
	switch {
	case !ok || r.Method != http.MethodPost:
		twirpError(w, http.StatusNotFound, "bad_route", "no such method "+r.Method+" "+r.URL.Path)
		return
	case r.Header.Get("Authorization") != "Bearer "+g.Token:
		twirpError(w, http.StatusUnauthorized, "unauthenticated", "invalid runtime token")
		return
	}
	var req ghaRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Key == "" || req.Version == "" {
		twirpError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("key and version required (%v)", err))
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch method {
	case "CreateCacheEntry":
		if _, ok := g.entries[req.Key]; ok {
			twirpError(w, http.StatusConflict, "already_exists", "cache entry "+req.Key+" already exists")
			return
		}
		sum := sha256.Sum256([]byte(req.Key))
		e := &ghaEntry{version: req.Version, blob: hex.EncodeToString(sum[:])}
		g.entries[req.Key] = e
		g.replyURL(w, "signed_upload_url", e.blob, true, nil)
	case "FinalizeCacheEntryUpload":
		e, ok := g.entries[req.Key]
		if !ok || e.seq != 0 || e.version != req.Version {
			twirpError(w, http.StatusNotFound, "not_found", "no pending cache entry "+req.Key)
			return
		}
		if size, err := g.blobSize(r.Context(), e.blob); err != nil || size != req.SizeBytes {
			twirpError(w, http.StatusBadRequest, "invalid_argument",
				fmt.Sprintf("cache entry %s: uploaded %d bytes (%v), finalized as %d", req.Key, size, err, req.SizeBytes))
			return
		}
		g.seq++
		e.seq = g.seq
		g.reply(w, map[string]any{"ok": true, "entry_id": fmt.Sprint(e.seq)})
	case "GetCacheEntryDownloadURL":
		key, e := g.lookup(req)
		if e == nil {
			g.reply(w, map[string]any{"ok": false})
			return
		}
		g.replyURL(w, "signed_download_url", e.blob, false, map[string]any{"matched_key": key})
	default:
		twirpError(w, http.StatusNotFound, "bad_route", "no such method "+method)
	}
}

// lookup finds the exact key, else the newest entry with a restore key as
// prefix; only finalized entries of the request's version count.
func (g *ghaCache) lookup(req ghaRequest) (string, *ghaEntry) {
	if e, ok := g.entries[req.Key]; ok && e.seq != 0 && e.version == req.Version {
		return req.Key, e
	}
	for _, p := range req.RestoreKeys {
		var best string
		for k, e := range g.entries {
			if strings.HasPrefix(k, p) && e.seq != 0 && e.version == req.Version && (best == "" || e.seq > g.entries[best].seq) {
				best = k
			}
		}
		if best != "" {
			return best, g.entries[best]
		}
	}
	return "", nil
}

// blobSize is the size of the uploaded blob in Azurite.
func (g *ghaCache) blobSize(ctx context.Context, name string) (int64, error) {
	cred, err := service.NewSharedKeyCredential(azuriteAccount, azuriteKey)
	if err != nil {
		return 0, err
	}
	c, err := blob.NewClientWithSharedKeyCredential(g.azurite.accountURL+"/"+g.container+"/"+name, cred, nil)
	if err != nil {
		return 0, err
	}
	props, err := c.GetProperties(ctx, nil)
	if err != nil {
		return 0, err
	}
	if props.ContentLength == nil {
		return 0, fmt.Errorf("blob %s has no length", name)
	}
	return *props.ContentLength, nil
}

// signedURL is a SAS URL of blob in the fake's container, valid for an
// hour, for reading or (write) for creating it.
func (g *ghaCache) signedURL(blob string, write bool) (string, error) {
	cred, err := service.NewSharedKeyCredential(azuriteAccount, azuriteKey)
	if err != nil {
		return "", err
	}
	perms := sas.BlobPermissions{Read: !write, Create: write, Write: write}
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    time.Now().Add(time.Hour),
		Permissions:   perms.String(),
		ContainerName: g.container,
		BlobName:      blob,
	}.SignWithSharedKey(cred)
	if err != nil {
		return "", err
	}
	return g.azurite.accountURL + "/" + g.container + "/" + blob + "?" + qp.Encode(), nil
}

// replyURL answers ok with a signed URL of blob under field, and extra.
func (g *ghaCache) replyURL(w http.ResponseWriter, field, blob string, write bool, extra map[string]any) {
	u, err := g.signedURL(blob, write)
	if err != nil {
		twirpError(w, http.StatusInternalServerError, "internal", "sign blob URL: "+err.Error())
		return
	}
	body := map[string]any{"ok": true, field: u}
	for k, v := range extra {
		body[k] = v
	}
	g.reply(w, body)
}

func (g *ghaCache) reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// twirpError writes a twirp error.
func twirpError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "msg": msg})
}
