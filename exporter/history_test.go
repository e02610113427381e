package exporter

import (
	"slices"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func ts(sec int64) *time.Time { t := time.Unix(sec, 0).UTC(); return &t }

func hist(spec string) []ocispec.History {
	// spec: one letter per entry: L = layer entry, E = empty_layer entry
	var h []ocispec.History
	for i, c := range spec {
		h = append(h, ocispec.History{CreatedBy: string(c) + string(rune('0'+i)), EmptyLayer: c == 'E', Created: ts(int64(1000 + i))})
	}
	return h
}

func lays(spec string) []layerMeta {
	// spec: one letter per layer: D = data, 0 = empty diff
	var l []layerMeta
	for i, c := range spec {
		l = append(l, layerMeta{Empty: c == '0', Description: "ref" + string(rune('0'+i)), CreatedAt: time.Unix(int64(2000+i), 0)})
	}
	return l
}

// shape renders history as letters: L non-empty, E empty, S synthesized.
func shape(h []ocispec.History) string {
	var b strings.Builder
	for _, e := range h {
		switch {
		case e.Comment == SynthesizedComment && !e.EmptyLayer:
			b.WriteByte('S')
		case e.Comment == SynthesizedComment:
			b.WriteByte('s')
		case e.EmptyLayer:
			b.WriteByte('E')
		default:
			b.WriteByte('L')
		}
	}
	return b.String()
}

func TestNormalizeHistory(t *testing.T) {
	created := time.Unix(5000, 0).UTC()
	cases := []struct {
		name      string
		history   string
		layers    string
		rules     historyRules
		shape     string
		keep      []int
		addEmpty  bool
		repairs   int
		errSubstr string
	}{
		{name: "no history", history: "", layers: "DD", shape: "SS", keep: []int{0, 1}, repairs: 2},
		{name: "exact", history: "LEL", layers: "DD", shape: "LEL", keep: []int{0, 1}},
		{name: "shorter", history: "L", layers: "DDD", shape: "LSS", keep: []int{0, 1, 2}, repairs: 2},
		{name: "longer is an error", history: "LLL", layers: "DD", errSubstr: "3 non-empty entries but the image has 2 layers"},
		{name: "longer repaired", history: "LLL", layers: "DD", rules: historyRules{Repair: true}, shape: "LLE", keep: []int{0, 1}, repairs: 1},
		{name: "empty bottom", history: "LLL", layers: "0DD", shape: "ELL", keep: []int{1, 2}},
		{name: "empty middle", history: "LELL", layers: "D0D", shape: "LEEL", keep: []int{0, 2}},
		{name: "empty top", history: "LL", layers: "D0", shape: "LE", keep: []int{0}},
		{name: "empty kept on request", history: "LL", layers: "D0", rules: historyRules{KeepEmpty: true}, shape: "LL", keep: []int{0, 1}},
		{name: "all empty keeps one", history: "LL", layers: "00", shape: "EL", addEmpty: true},
		// The base image's empty layer stays; only the new one goes.
		{name: "base empty kept", history: "LLL", layers: "0D0", rules: historyRules{BaseLayers: 2}, shape: "LLE", keep: []int{0, 1}},
		// A scratch image stays without layers, as in BuildKit (its
		// TestBuildExportScratch).
		{name: "no layers at all", history: "E", layers: "", shape: "E"},
		{name: "synthesized empty", history: "", layers: "0D", shape: "sS", keep: []int{1}, repairs: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.rules.Created = created
			n, err := normalizeHistory(hist(c.history), lays(c.layers), c.rules)
			if c.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), c.errSubstr) {
					t.Fatalf("error %v, want %q", err, c.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := shape(n.History); got != c.shape {
				t.Errorf("shape %s, want %s", got, c.shape)
			}
			if !slices.Equal(n.Keep, c.keep) {
				t.Errorf("keep %v, want %v", n.Keep, c.keep)
			}
			if n.AddEmpty != c.addEmpty {
				t.Errorf("addEmpty %v, want %v", n.AddEmpty, c.addEmpty)
			}
			if len(n.Repairs) != c.repairs {
				t.Errorf("repairs %q, want %d", n.Repairs, c.repairs)
			}
			nonEmpty := 0
			for _, e := range n.History {
				if !e.EmptyLayer {
					nonEmpty++
				}
				if e.Created == nil {
					t.Errorf("entry %q has no created", e.CreatedBy)
				}
			}
			want := len(n.Keep)
			if n.AddEmpty {
				want++
			}
			if nonEmpty != want {
				t.Errorf("%d non-empty entries for %d layers", nonEmpty, want)
			}
		})
	}
}

func TestNormalizeHistoryCreated(t *testing.T) {
	epoch := ts(1500)
	h := []ocispec.History{
		{CreatedBy: "base", Created: ts(1800)},   // base entry: kept although after epoch
		{CreatedBy: "new", Created: ts(1900)},    // clamped
		{CreatedBy: "old", Created: ts(1200)},    // before epoch: kept
		{CreatedBy: "missing", EmptyLayer: true}, // filled
	}
	n, err := normalizeHistory(h, lays("DDD"), historyRules{Created: *epoch, Epoch: epoch, BaseHistory: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{1800, 1500, 1200, 1500}
	for i, w := range want {
		if got := n.History[i].Created.Unix(); got != w {
			t.Errorf("entry %d created %d, want %d", i, got, w)
		}
	}
}
