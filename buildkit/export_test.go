package buildkit

import (
	"reflect"
	"testing"
	"time"

	bkexporter "github.com/moby/buildkit/exporter"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestNames(t *testing.T) {
	src := &bkexporter.Source{Metadata: map[string][]byte{exptypes.ExporterImageNameKey: []byte("from/frontend:1")}}
	cases := map[string][]string{
		"":            nil,
		"a:1, b:2":    {"a:1", "b:2"},
		"*":           {"from/frontend:1"},
		"a:1,,b:2, ,": {"a:1", "b:2"},
	}
	for name, want := range cases {
		s, err := parseSettings("image", map[string]string{"name": name}, Defaults{})
		if err != nil {
			t.Fatal(err)
		}
		i := &instance{s: s}
		if got := i.names(src); !reflect.DeepEqual(got, want) {
			t.Errorf("name=%q: %v, want %v", name, got, want)
		}
	}
	s, _ := parseSettings("image", map[string]string{"name": "*"}, Defaults{})
	if got := (&instance{s: s}).names(&bkexporter.Source{}); got != nil {
		t.Errorf("name=* without a frontend name: %v", got)
	}
}

func TestTagNames(t *testing.T) {
	got, err := tagNames([]string{"x", "reg:5000/a/b", "c:1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"docker.io/library/x:latest", "reg:5000/a/b:latest", "docker.io/library/c:1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%v, want %v", got, want)
	}
	if _, err := tagNames([]string{"UPPER"}); err == nil {
		t.Error("invalid name accepted")
	}
}

func TestWithCreated(t *testing.T) {
	e := time.Unix(1700000000, 0)
	d := withCreated(ocispecs.Descriptor{Annotations: map[string]string{"k": "v"}}, &plan{epoch: &e})
	if d.Annotations[ocispecs.AnnotationCreated] != "2023-11-14T22:13:20Z" || d.Annotations["k"] != "v" {
		t.Errorf("annotations %v", d.Annotations)
	}
}

// TestVertexNames checks the export vertex has BuildKit's name, which
// clients and BuildKit's TestPushProgressSameVertex look for.
func TestVertexNames(t *testing.T) {
	for typ, want := range map[string]string{"image": "exporting to image", "oci": "exporting to oci image format", "docker": "exporting to docker image format"} {
		if got := (&instance{e: &Exporter{typ: typ}}).Name(); got != want {
			t.Errorf("%s: vertex %q, want %q", typ, got, want)
		}
	}
}
