package buildkit

import (
	"bytes"
	"context"
	"strings"
	"testing"

	intoto "github.com/in-toto/in-toto-golang/in_toto"
	bkcache "github.com/moby/buildkit/cache"
	bkexporter "github.com/moby/buildkit/exporter"
	gatewaypb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver/result"
	digest "github.com/opencontainers/go-digest"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
)

// fileRef is a layer of a fake chain: its own files.
type fileRef struct {
	bkcache.ImmutableRef
	files []string
	chain bkcache.RefList
}

func (r *fileRef) FileList(context.Context, session.Group) ([]string, error) { return r.files, nil }
func (r *fileRef) LayerChain() bkcache.RefList                               { return r.chain }
func (r *fileRef) Release(context.Context) error                             { return nil }

// TestSupplementSBOM checks the core SPDX SBOM's files get the layer that
// created them as BuildKit writes it (its TestSBOMSupplements): /foo from
// the top layer that has it, /bar (in no layer) and commented files left
// alone, a whiteout no creation.
func TestSupplementSBOM(t *testing.T) {
	bottom := &fileRef{files: []string{"foo", "etc/x"}}
	top := &fileRef{files: []string{"/foo", "/.wh.etc"}}
	top.chain = bkcache.RefList{bottom, top}
	layers := []digest.Digest{digest.FromString("bottom"), digest.FromString("top")}

	doc := &spdx.Document{SPDXVersion: spdx.Version, DataLicense: spdx.DataLicense, SPDXIdentifier: "DOCUMENT", Files: []*spdx.File{{FileSPDXIdentifier: "f1", FileName: "/foo"}, {FileSPDXIdentifier: "f2", FileName: "/bar"}},
		Packages: []*spdx.Package{{PackageSPDXIdentifier: "p", PackageName: "p", Files: []*spdx.File{
			{FileSPDXIdentifier: "f3", FileName: "etc/x"}, {FileSPDXIdentifier: "f4", FileName: "/foo", FileComment: "mine"}}}}}
	var buf bytes.Buffer
	if err := spdxjson.Write(doc, &buf); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	sbom := bkexporter.Attestation{
		Kind: gatewaypb.AttestationKind_InToto, Path: "result.spdx.json",
		InToto:      result.InTotoAttestation{PredicateType: intoto.PredicateSPDX},
		Metadata:    map[string][]byte{result.AttestationSBOMCore: []byte("result")},
		ContentFunc: func(context.Context) ([]byte, error) { return data, nil },
	}
	other := sbom
	other.Path = "extra.spdx.json"
	atts := []bkexporter.Attestation{sbom, other}
	if err := supplementSBOMs(context.Background(), nil, top, layers, atts); err != nil {
		t.Fatal(err)
	}
	out, err := atts[0].ContentFunc(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := spdxjson.Read(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"/foo": "layerID: " + layers[1].String(), "/bar": ""}
	for _, f := range got.Files {
		if f.FileComment != want[f.FileName] {
			t.Errorf("%s: comment %q, want %q", f.FileName, f.FileComment, want[f.FileName])
		}
	}
	pf := got.Packages[0].Files
	if pf[0].FileComment != "layerID: "+layers[0].String() || pf[1].FileComment != "mine" {
		t.Errorf("package files %q %q", pf[0].FileComment, pf[1].FileComment)
	}
	if c := got.CreationInfo.Creators; len(c) == 0 || !strings.HasPrefix(c[len(c)-1].Creator, "buildkit-") {
		t.Errorf("creators %v", c)
	}
	if o, _ := atts[1].ContentFunc(context.Background()); !bytes.Equal(o, data) {
		t.Error("an SBOM that is not the core one was changed")
	}
}
