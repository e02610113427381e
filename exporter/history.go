package exporter

import (
	"fmt"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// SynthesizedComment marks history entries lade made up for layers the
// config's history did not account for.
const SynthesizedComment = "lade.exporter.v0"

// layerMeta is what history normalization needs to know of one layer.
type layerMeta struct {
	Empty       bool
	Description string
	CreatedAt   time.Time
}

// normalized is the outcome of normalizeHistory.
type normalized struct {
	History []ocispec.History
	// Keep lists the indexes of the layers that stay in the manifest.
	Keep []int
	// AddEmpty asks for one empty gzip layer because no layer is left.
	AddEmpty bool
	Repairs  []string
}

// historyRules are the options of normalizeHistory.
type historyRules struct {
	KeepEmpty   bool
	Repair      bool
	Created     time.Time // fills missing created
	Epoch       *time.Time
	BaseHistory int // leading entries kept untouched
	BaseLayers  int // leading layers never dropped
}

// normalizeHistory reconciles a config history with the layers so that the
// non-empty entries are exactly the layers kept, in order:
//   - surplus non-empty entries are an error, or with Repair the trailing
//     ones are marked empty_layer (reported);
//   - missing entries are synthesized from the layers' metadata (reported);
//   - the entries of empty layers are marked empty_layer and those layers are
//     dropped, unless KeepEmpty or they are among the first BaseLayers;
//   - when every layer is empty, one empty layer is kept (AddEmpty) so that
//     the image keeps a layer; an image with no layers at all (FROM scratch
//     and nothing added) stays without, as in BuildKit;
//   - missing created values are filled and, with an epoch, later ones are
//     clamped to it, except in the first BaseHistory entries.
func normalizeHistory(history []ocispec.History, layers []layerMeta, r historyRules) (normalized, error) {
	var n normalized
	h := append([]ocispec.History(nil), history...)
	nonEmpty := 0
	for _, e := range h {
		if !e.EmptyLayer {
			nonEmpty++
		}
	}
	if nonEmpty > len(layers) {
		if !r.Repair {
			return n, fmt.Errorf("config history has %d non-empty entries but the image has %d layers: fix the history or ask for repair (repair-history)", nonEmpty, len(layers))
		}
		seen := 0
		for i := range h {
			if h[i].EmptyLayer {
				continue
			}
			if seen >= len(layers) {
				h[i].EmptyLayer = true
				n.Repairs = append(n.Repairs, fmt.Sprintf("history entry %d (%q) has no layer: marked empty_layer", i, h[i].CreatedBy))
			}
			seen++
		}
		nonEmpty = len(layers)
	}
	for _, l := range layers[nonEmpty:] {
		e := ocispec.History{CreatedBy: l.Description, Comment: SynthesizedComment}
		if !l.CreatedAt.IsZero() {
			t := l.CreatedAt.UTC()
			e.Created = &t
		}
		h = append(h, e)
		n.Repairs = append(n.Repairs, fmt.Sprintf("history entry %d synthesized for layer %q", len(h)-1, l.Description))
	}
	n.History, n.Keep, n.AddEmpty = dropEmpty(h, layers, r.KeepEmpty, r.BaseLayers)
	fillCreated(n.History, r)
	return n, nil
}

// dropEmpty marks the entries of empty layers empty_layer and returns the
// indexes of the layers kept; the first base layers are always kept. When
// every layer would go, it asks for one empty layer and gives the last
// dropped entry back to it. No layers stay no layers.
func dropEmpty(h []ocispec.History, layers []layerMeta, keepEmpty bool, base int) ([]ocispec.History, []int, bool) {
	if len(layers) == 0 {
		return h, nil, false
	}
	var keep []int
	lastDropped := -1
	li := 0
	for i := range h {
		if h[i].EmptyLayer {
			continue
		}
		if layers[li].Empty && !keepEmpty && li >= base {
			h[i].EmptyLayer = true
			lastDropped = i
		} else {
			keep = append(keep, li)
		}
		li++
	}
	if len(keep) > 0 {
		return h, keep, false
	}
	h[lastDropped].EmptyLayer = false
	return h, nil, true
}

// fillCreated fills missing created values and clamps later ones to the
// epoch, leaving base-image entries as they are.
func fillCreated(h []ocispec.History, r historyRules) {
	for i := range h {
		if i < r.BaseHistory {
			continue
		}
		if h[i].Created == nil {
			t := r.Created
			h[i].Created = &t
			continue
		}
		if r.Epoch != nil && h[i].Created.After(*r.Epoch) {
			t := r.Epoch.UTC()
			h[i].Created = &t
		}
	}
}
