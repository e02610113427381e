package buildkit

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestLayerMapIndex(t *testing.T) {
	cases := []struct {
		empty     []bool
		keepEmpty bool
		want      []int
	}{
		{[]bool{false, false, true, false}, false, []int{0, 1, 1, 2}},
		{[]bool{true, false, true, true, false}, false, []int{-1, 0, 0, 0, 1}},
		{[]bool{false, true}, true, []int{0, 1}},
		{[]bool{true, true}, false, []int{0, 0}}, // synthetic empty layer
	}
	for _, c := range cases {
		m := newLayerMap(c.empty, c.keepEmpty)
		var got []int
		for i := range c.empty {
			got = append(got, m.index(i))
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("empty %v keep %v: %v, want %v", c.empty, c.keepEmpty, got, c.want)
		}
	}
}

func TestRemapInlineCache(t *testing.T) {
	records := []cacheimporttypes.CacheRecord{
		{Digest: "sha256:a", Results: []cacheimporttypes.CacheResult{{LayerIndex: 0}}},
		{Digest: "sha256:b", Results: []cacheimporttypes.CacheResult{{LayerIndex: 1}}}, // empty layer
		{Digest: "sha256:c", Results: []cacheimporttypes.CacheResult{{LayerIndex: 2}}},
		{Digest: "sha256:d", ChainedResults: []cacheimporttypes.ChainedResult{{LayerIndexes: []int{0, 1, 2}}}},
		{Digest: "sha256:e", ChainedResults: []cacheimporttypes.ChainedResult{{LayerIndexes: []int{1}}}},
	}
	in, _ := json.Marshal(records)
	out, err := remapInlineCache(in, newLayerMap([]bool{false, true, false}, false))
	if err != nil {
		t.Fatal(err)
	}
	var got []cacheimporttypes.CacheRecord
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	idx := func(r cacheimporttypes.CacheRecord) []int {
		var o []int
		for _, res := range r.Results {
			o = append(o, res.LayerIndex)
		}
		return o
	}
	if !reflect.DeepEqual(idx(got[0]), []int{0}) || !reflect.DeepEqual(idx(got[1]), []int{0}) || !reflect.DeepEqual(idx(got[2]), []int{1}) {
		t.Errorf("results: %v %v %v", idx(got[0]), idx(got[1]), idx(got[2]))
	}
	if len(got[3].ChainedResults) != 1 || !reflect.DeepEqual(got[3].ChainedResults[0].LayerIndexes, []int{0, 1}) {
		t.Errorf("chained: %+v", got[3].ChainedResults)
	}
	if len(got[4].ChainedResults) != 0 {
		t.Errorf("chain of only an empty layer kept: %+v", got[4].ChainedResults)
	}
	bad, _ := json.Marshal([]cacheimporttypes.CacheRecord{{Results: []cacheimporttypes.CacheResult{{LayerIndex: 7}}}})
	if _, err := remapInlineCache(bad, newLayerMap([]bool{false}, false)); err == nil {
		t.Error("out-of-range layer index accepted")
	}
}

func TestRemapDropsLayerlessResult(t *testing.T) {
	in, _ := json.Marshal([]cacheimporttypes.CacheRecord{{Digest: "sha256:a", Results: []cacheimporttypes.CacheResult{{LayerIndex: 0}}}})
	out, err := remapInlineCache(in, newLayerMap([]bool{true, false}, false))
	if err != nil {
		t.Fatal(err)
	}
	var got []cacheimporttypes.CacheRecord
	_ = json.Unmarshal(out, &got)
	if len(got) != 1 || len(got[0].Results) != 0 {
		t.Fatalf("got %+v", got)
	}
}

func TestWithInlineCache(t *testing.T) {
	cfg := []byte(`{"os":"linux","architecture":"amd64","x-unknown":{"a":1}}`)
	out, err := withInlineCache(cfg, []byte(`[{"digest":"sha256:a"}]`))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := json.Unmarshal(m[inlineCacheConfigKey], &s); err != nil {
		t.Fatalf("cache key not a base64 string: %s", m[inlineCacheConfigKey])
	}
	if b, _ := base64.StdEncoding.DecodeString(s); string(b) != `[{"digest":"sha256:a"}]` {
		t.Errorf("cache %q", b)
	}
	if string(m["x-unknown"]) != `{"a":1}` {
		t.Errorf("unknown field lost: %s", out)
	}
}

func TestFillHistoryCreated(t *testing.T) {
	t1 := time.Unix(100, 0).UTC()
	t2 := time.Unix(200, 0).UTC()
	h := []ocispecs.History{
		{CreatedBy: "COPY"},
		{CreatedBy: "ENV", EmptyLayer: true},
		{CreatedBy: "RUN"},
		{CreatedBy: "LABEL", EmptyLayer: true},
	}
	cfg, _ := json.Marshal(map[string]any{"os": "linux", "history": h})
	out, err := fillHistoryCreated(cfg, []layerMeta{{createdAt: t1}, {createdAt: t2}})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Created *time.Time
		History []ocispecs.History
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := []time.Time{t1, t2, t2, t2} // BuildKit: the first gap takes the next time
	for i, e := range got.History {
		if e.Created == nil || !e.Created.Equal(want[i]) {
			t.Errorf("entry %d created %v, want %v", i, e.Created, want[i])
		}
	}
	if got.Created == nil || !got.Created.Equal(t2) {
		t.Errorf("image created %v, want the last history time %v", got.Created, t2)
	}
	if same, _ := fillHistoryCreated([]byte(`{"os":"linux"}`), nil); string(same) != `{"os":"linux"}` {
		t.Errorf("config without history or layers changed: %s", same)
	}
}

// TestFillHistoryCreatedNoHistory checks a config without history (the
// frontend gave none): BuildKit's history, one entry per layer at its
// ref's time, and the image created at the last layer's time (its
// TestSourceDateEpochReset).
func TestFillHistoryCreatedNoHistory(t *testing.T) {
	t1, t2 := time.Unix(100, 0).UTC(), time.Unix(200, 0).UTC()
	out, err := fillHistoryCreated([]byte(`{"os":"linux"}`), []layerMeta{{description: "a", createdAt: t1}, {description: "b", createdAt: t2}})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Created *time.Time
		History []ocispecs.History
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.History) != 2 || got.History[1].CreatedBy != "b" || got.History[1].Comment != synthesizedComment || !got.History[0].Created.Equal(t1) {
		t.Errorf("history %+v", got.History)
	}
	if got.Created == nil || !got.Created.Equal(t2) {
		t.Errorf("image created %v, want the last layer's time %v", got.Created, t2)
	}
}

// TestFillHistoryCreatedNewLayer checks a base config whose history lacks
// the new layer's entry (BuildKit's TestSourceDateEpochClamp): the entry
// is added at the new ref's time, and the image is created then, not at
// the base's time.
func TestFillHistoryCreatedNewLayer(t *testing.T) {
	t0, t1 := time.Unix(100, 0).UTC(), time.Unix(5000, 0).UTC()
	cfg, _ := json.Marshal(map[string]any{"history": []ocispecs.History{{CreatedBy: "base", Created: &t0}}})
	out, err := fillHistoryCreated(cfg, []layerMeta{{createdAt: t0}, {description: "RUN touch /foo", createdAt: t1}})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Created *time.Time
		History []ocispecs.History
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.History) != 2 || got.History[1].CreatedBy != "RUN touch /foo" || !got.History[1].Created.Equal(t1) {
		t.Errorf("history %+v", got.History)
	}
	if got.Created == nil || !got.Created.Equal(t1) {
		t.Errorf("image created %v, want the new layer's time %v", got.Created, t1)
	}
}
