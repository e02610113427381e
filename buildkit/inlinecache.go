package buildkit

import (
	"context"
	"encoding/json"
	"fmt"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
)

// layerMap says which layers of a ref chain the image keeps.
type layerMap struct {
	// kept[i] is true when layer i of the chain is in the manifest.
	kept []bool
	// synthetic is true when every layer was empty and dropped: the image
	// then has one empty layer of its own, at index 0.
	synthetic bool
}

// newLayerMap predicts lade's empty-layer dropping from the layers'
// diffIDs: empty layers go unless keepEmpty.
func newLayerMap(empty []bool, keepEmpty bool) layerMap {
	m := layerMap{kept: make([]bool, len(empty))}
	any := false
	for i, e := range empty {
		m.kept[i] = keepEmpty || !e
		any = any || m.kept[i]
	}
	m.synthetic = !any && len(empty) > 0
	return m
}

// index maps a chain index to the image's index of the topmost kept layer
// at or below it; -1 when there is none.
func (m layerMap) index(i int) int {
	if m.synthetic {
		return 0
	}
	n := -1
	for j := 0; j <= i && j < len(m.kept); j++ {
		if m.kept[j] {
			n++
		}
	}
	return n
}

// remapInlineCache rewrites the records of BuildKit's inline cache, whose
// layer indices count the ref chain's layers, so that they count the
// image's layers after empty layers were dropped. A result ending on a
// dropped layer now ends on the kept layer below it (the same filesystem);
// a result with no layer left is removed.
func remapInlineCache(data []byte, m layerMap) ([]byte, error) {
	var records []cacheimporttypes.CacheRecord
	if err := json.Unmarshal(data, &records); err != nil {
		return nil, fmt.Errorf("inline cache: %w", err)
	}
	n := len(m.kept)
	for ri := range records {
		r := &records[ri]
		var results []cacheimporttypes.CacheResult
		for _, res := range r.Results {
			if res.LayerIndex < 0 || res.LayerIndex >= n {
				return nil, fmt.Errorf("inline cache: record %d: layer index %d out of range 0..%d", ri, res.LayerIndex, n-1)
			}
			if res.LayerIndex = m.index(res.LayerIndex); res.LayerIndex >= 0 {
				results = append(results, res)
			}
		}
		r.Results = results
		var chains []cacheimporttypes.ChainedResult
		for _, cr := range r.ChainedResults {
			var idx []int
			for _, li := range cr.LayerIndexes {
				if li < 0 || li >= n {
					return nil, fmt.Errorf("inline cache: record %d: layer index %d out of range 0..%d", ri, li, n-1)
				}
				if m.synthetic && len(idx) == 0 {
					idx = append(idx, 0)
				} else if !m.synthetic && m.kept[li] {
					idx = append(idx, m.index(li))
				}
			}
			if len(idx) > 0 {
				cr.LayerIndexes = idx
				chains = append(chains, cr)
			}
		}
		r.ChainedResults = chains
	}
	return json.Marshal(records)
}

// inlineCacheEntries asks BuildKit for the inline cache of each platform
// (nil entries when no inline cache export was requested).
func inlineCacheEntries(ctx context.Context, ic exptypes.InlineCache, p *plan) (map[string][]byte, error) {
	if ic == nil {
		return nil, nil
	}
	res, err := ic(ctx)
	if err != nil || res == nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, pp := range p.platforms {
		e, ok := res.FindRef(pp.id)
		if !p.index && res.Ref != nil {
			e, ok = res.Ref, true
		}
		if ok && e != nil {
			out[pp.id] = e.Data
		}
	}
	return out, nil
}

// withInlineCache returns config with the inline cache records set.
func withInlineCache(config []byte, records []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(config, &m); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	if m == nil {
		return nil, fmt.Errorf("image config is null")
	}
	b, err := json.Marshal(records)
	if err != nil {
		return nil, err
	}
	m[inlineCacheConfigKey] = b
	return json.Marshal(m)
}
