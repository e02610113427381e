package main

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	cacheimport "github.com/moby/buildkit/cache/remotecache/v1"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/cachedigest"
	"github.com/moby/buildkit/util/cachestore"
	digest "github.com/opencontainers/go-digest"
)

// debugCacheStorage hands the solver's cache key storage (cache.db) to the
// debug address, which starts serving before the daemon opens the storage.
type debugCacheStorage struct {
	mu    sync.RWMutex
	store solver.CacheKeyStorage
}

// debugCache is the daemon's cache key storage for /debug/cache/store.
var debugCache debugCacheStorage

func (d *debugCacheStorage) set(s solver.CacheKeyStorage) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.store = s
}

func (d *debugCacheStorage) get() solver.CacheKeyStorage {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.store
}

// cacheDebug serves buildkitd's cache inspection endpoints: the plaintexts
// of cache key digests recorded by --save-cache-debug (digests) and the
// records of the solver's cache key storage (store).
type cacheDebug struct {
	store   func() solver.CacheKeyStorage
	digests func() *cachedigest.DB
}

// register adds the /debug/cache/ endpoints to m, with buildkitd's paths
// and methods.
func (c cacheDebug) register(m *http.ServeMux) {
	m.HandleFunc("/debug/cache/all", c.all)
	m.HandleFunc("/debug/cache/lookup", c.lookup)
	m.HandleFunc("/debug/cache/store", c.storeRecords)
	m.HandleFunc("POST /debug/cache/load", c.load)
}

// wantsJSON reports whether the client asked for JSON; buildkitd answers
// plain text otherwise.
func wantsJSON(r *http.Request) bool {
	return r.Header.Get("Accept") == "application/json"
}

// writeJSON writes v as JSON, indented as buildkitd indents the answer
// in question, or a 500 if v cannot be encoded.
func writeJSON(w http.ResponseWriter, v any, indent bool) {
	dt, err := json.Marshal(v)
	if indent {
		dt, err = json.MarshalIndent(v, "", "  ")
	}
	if err != nil {
		http.Error(w, "failed to encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(dt, '\n'))
}

// all lists every plaintext in the cache debug database.
func (c cacheDebug) all(w http.ResponseWriter, r *http.Request) {
	recs, err := c.allDigests(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if wantsJSON(r) {
		writeJSON(w, recs, true)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	for _, rec := range recs {
		printDigestRecord(w, rec)
		_, _ = io.WriteString(w, "\n")
	}
}

// lookup shows the plaintext of ?digest= and of the digests it contains.
func (c cacheDebug) lookup(w http.ResponseWriter, r *http.Request) {
	s := r.URL.Query().Get("digest")
	if s == "" {
		http.Error(w, "digest query parameter is required", http.StatusBadRequest)
		return
	}
	dgst, err := digest.Parse(s)
	if err != nil {
		http.Error(w, "invalid digest: "+err.Error(), http.StatusBadRequest)
		return
	}
	rec, err := c.lookupDigest(r.Context(), dgst)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if wantsJSON(r) {
		writeJSON(w, rec, false)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	printDigestRecord(w, rec)
}

// storeRecords shows the records of the daemon's cache key storage.
func (c cacheDebug) storeRecords(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	store := c.store()
	if store == nil {
		http.Error(w, "Cache store is not initialized for debug: the daemon is still starting", http.StatusInternalServerError)
		return
	}
	recs, err := c.withDebug(r.Context(), store)
	if err != nil {
		http.Error(w, "Failed to debug cache store: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeStoreRecords(w, r, recs)
}

// load shows the records of the cache config (an exported cache's
// application/vnd.buildkit.cacheconfig.v0 JSON) posted as the body.
func (c cacheDebug) load(w http.ResponseWriter, r *http.Request) {
	dt, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "failed to load cache: failed to read body: "+err.Error(), http.StatusInternalServerError)
		return
	}
	chains := cacheimport.NewCacheChains()
	if err := cacheimport.Parse(dt, cacheimport.DescriptorProvider{}, chains); err != nil {
		http.Error(w, "failed to load cache: "+err.Error(), http.StatusInternalServerError)
		return
	}
	store, _, err := cacheimport.NewCacheKeyStorage(chains, nil)
	if err == nil {
		var recs []*storeRecord
		if recs, err = c.withDebug(r.Context(), store); err == nil {
			writeStoreRecords(w, r, recs)
			return
		}
	}
	http.Error(w, "failed to load cache: "+err.Error(), http.StatusInternalServerError)
}

// rootDigest is the digest of "/", the selector of whole-filesystem
// inputs; buildkitd answers it without the debug database.
const rootDigest = digest.Digest("sha256:8a5edab282632443219e051e4ade2d1d5bbc671c781051bf1437897cbdfea0f1")

// lookupDigest loads dgst's plaintext and its sub-records.
func (c cacheDebug) lookupDigest(ctx context.Context, dgst digest.Digest) (*cachedigest.Record, error) {
	if dgst == rootDigest {
		return &cachedigest.Record{Digest: dgst, Type: cachedigest.TypeString,
			Data: []cachedigest.Frame{{ID: cachedigest.FrameIDData, Data: []byte("/")}}}, nil
	}
	db := c.digests()
	get := func(d digest.Digest) (cachedigest.Type, []cachedigest.Frame, error) {
		typ, frames, err := db.Get(ctx, d.String())
		if err != nil {
			return "", nil, fmt.Errorf("failed to get digest %s from cache (is --save-cache-debug set?): %w", d, err)
		}
		return typ, frames, nil
	}
	typ, frames, err := get(dgst)
	if err != nil {
		return nil, err
	}
	rec := &cachedigest.Record{Digest: dgst, Type: typ, Data: frames}
	if err := rec.LoadSubRecords(get); err != nil {
		return nil, fmt.Errorf("failed to load sub-records for %s: %w", dgst, err)
	}
	return rec, nil
}

// allDigests loads every record of the debug database with its sub-records.
func (c cacheDebug) allDigests(ctx context.Context) ([]*cachedigest.Record, error) {
	var recs []*cachedigest.Record
	byDigest := map[digest.Digest]*cachedigest.Record{}
	err := c.digests().All(ctx, func(key string, typ cachedigest.Type, frames []cachedigest.Frame) error {
		dgst, err := digest.Parse(key)
		if err != nil {
			return fmt.Errorf("failed to parse digest %q: %w", key, err)
		}
		rec := &cachedigest.Record{Digest: dgst, Type: typ, Data: frames}
		recs = append(recs, rec)
		byDigest[dgst] = rec
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		err := rec.LoadSubRecords(func(d digest.Digest) (cachedigest.Type, []cachedigest.Frame, error) {
			if sub, ok := byDigest[d]; ok {
				return sub.Type, sub.Data, nil
			}
			return "", nil, fmt.Errorf("digest %s not found in cache", d)
		})
		if err != nil {
			return nil, fmt.Errorf("failed to load sub-records for %s: %w", rec.Digest, err)
		}
	}
	return recs, nil
}

// printDigestRecord writes rec as buildkitd's plain-text answer does.
func printDigestRecord(w io.Writer, rec *cachedigest.Record) {
	fmt.Fprintf(w, "%s (%s):\n", rec.Digest, rec.Type)
	for _, sub := range rec.SubRecords {
		fmt.Fprintf(w, "  %s (%s):\n", sub.Digest, sub.Type)
	}
	for _, f := range rec.Data {
		switch f.ID {
		case cachedigest.FrameIDData:
			fmt.Fprintf(w, "  %s: %s\n", f.ID, f.Data)
		case cachedigest.FrameIDSkip:
			fmt.Fprintf(w, "  skipping %d bytes\n", binary.LittleEndian.Uint32(f.Data))
		}
	}
	for _, sub := range rec.SubRecords {
		_, _ = io.WriteString(w, "\n")
		printDigestRecord(w, sub)
	}
}

// storeRecord is a cache key storage record with the plaintexts of its
// digest and its links' digests and selectors, in buildkitd's JSON shape.
type storeRecord struct {
	*cachestore.Record
	Debug []*cachedigest.Record `json:"debug,omitempty"`
}

// withDebug lists store's records, each with the plaintexts the debug
// database knows for it.
func (c cacheDebug) withDebug(ctx context.Context, store solver.CacheKeyStorage) ([]*storeRecord, error) {
	recs, err := cachestore.Records(ctx, store)
	if err != nil {
		return nil, fmt.Errorf("failed to get cache records: %w", err)
	}
	out := make([]*storeRecord, len(recs))
	for i, rec := range recs {
		want := map[digest.Digest]struct{}{}
		if rec.Digest != "" {
			want[rec.Digest] = struct{}{}
		}
		for _, l := range rec.Parents {
			want[l.Digest] = struct{}{}
			if l.Selector != "" {
				want[l.Selector] = struct{}{}
			}
		}
		out[i] = &storeRecord{Record: rec}
		for _, dgst := range slices.Sorted(maps.Keys(want)) {
			d, err := c.lookupDigest(ctx, dgst)
			if err != nil {
				if !errors.Is(err, cachedigest.ErrNotFound) {
					bklog.G(ctx).Errorf("failed to lookup cache record for %s: %v", dgst, err)
				}
				continue
			}
			out[i].Debug = append(out[i].Debug, d)
		}
	}
	return out, nil
}

// writeStoreRecords writes recs as JSON or as buildkitd's plain text.
func writeStoreRecords(w http.ResponseWriter, r *http.Request, recs []*storeRecord) {
	if wantsJSON(r) {
		writeJSON(w, recs, true)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	for _, rec := range recs {
		random := ""
		if rec.Random {
			random = " (random)"
		}
		fmt.Fprintf(w, "ID: %d%s\n", rec.ID, random)
		if rec.Digest != "" {
			fmt.Fprintf(w, "Digest: %s\n", rec.Digest)
		}
		if len(rec.Parents) > 0 {
			fmt.Fprintln(w, "Parents:")
			slices.SortStableFunc(rec.Parents, func(a, b cachestore.Link) int {
				return cmp.Or(cmp.Compare(a.Input, b.Input), cmp.Compare(a.Digest, b.Digest))
			})
			for _, p := range rec.Parents {
				fmt.Fprintf(w, "  Input %d:\t%d\t%s\n", p.Input, p.Record.ID, p.Digest)
				if p.Selector != "" {
					fmt.Fprintf(w, "    Selector: %s\n", p.Selector)
				}
			}
		}
		if len(rec.Children) > 0 {
			fmt.Fprintln(w, "Children:")
			for _, input := range slices.Sorted(maps.Keys(rec.ChildIDs)) {
				ids := slices.Sorted(maps.Keys(rec.ChildIDs[input]))
				s := make([]string, len(ids))
				for i, id := range ids {
					s[i] = strconv.Itoa(id)
				}
				fmt.Fprintf(w, "  Input %d:\t %s\n", input, strings.Join(s, ", "))
			}
		}
		if len(rec.Debug) > 0 {
			fmt.Fprintln(w, "Plaintexts:")
			for _, d := range rec.Debug {
				printDigestRecord(w, d)
				_, _ = io.WriteString(w, "\n")
			}
		}
		_, _ = io.WriteString(w, "\n")
	}
}
