//go:build integration

package frontendtest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/lade-build/lade/exporter/archive"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// indexJSON reads index.json of an OCI layout tar or directory.
func indexJSON(t *testing.T, path string, dir bool) ocispec.Index {
	t.Helper()
	var l archive.Layout
	if dir {
		l = openLayoutDir(t, path).Layout
	} else {
		l = openLayoutTar(t, path).Layout
	}
	idx, err := archive.ReadIndex(l)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// TestOCIIndexEntries: index.json of type=oci and type=docker outputs,
// tar or directory, single or multi-platform, has the entries stock
// buildkitd writes (platform of a single-platform image, names, created
// annotation), lade-buildkitd running with --stock-compat so that the
// digests are stock's too. (type=docker has no multi-platform case: stock
// refuses it, lade writes it on purpose.)
func TestOCIIndexEntries(t *testing.T) {
	ctx := multiPlatformContext(t)
	ld, sd := startDaemon(t, lade, "", "--stock-compat"), startDaemon(t, stock, "")
	for _, typ := range []string{"oci", "docker"} {
		for _, plats := range []string{"", "linux/amd64,linux/arm64"} {
			if typ == "docker" && plats != "" {
				continue
			}
			for _, tar := range []bool{true, false} {
				name := fmt.Sprintf("%s tar=%v platforms=%q", typ, tar, plats)
				var got [2]ocispec.Index
				for n, d := range []*daemon{ld, sd} {
					dest := filepath.Join(t.TempDir(), "out")
					flags := append([]string{"--output", fmt.Sprintf("type=%s,dest=%s,tar=%v,name=x/y:1", typ, dest, tar)}, epochOpt...)
					if plats != "" {
						flags = append(flags, "--opt", "platform="+plats)
					}
					d.mustBuild(t, ctx, flags...)
					got[n] = indexJSON(t, dest, !tar)
				}
				if !reflect.DeepEqual(got[0], got[1]) {
					l, _ := json.Marshal(got[0])
					s, _ := json.Marshal(got[1])
					t.Errorf("%s: index.json\n lade  %s\n stock %s", name, l, s)
				}
			}
		}
	}
}

// singleFrontend is a frontend returning one ref without a platform map
// (a single-platform image) with a fixed config: the same image on every
// daemon, built at no particular time.
func singleFrontend(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
	mtime := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	def, err := llb.Scratch().File(llb.Mkfile("/file", 0o644, []byte("single\n"), llb.WithCreatedTime(mtime))).Marshal(ctx)
	if err != nil {
		return nil, err
	}
	r, err := c.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return nil, err
	}
	ref, err := r.SingleRef()
	if err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(map[string]any{
		"os": "linux", "architecture": "amd64", "created": mtime, "config": map[string]any{},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{}},
		"history": []map[string]any{{"created": mtime, "created_by": "mkfile /file"}},
	})
	if err != nil {
		return nil, err
	}
	res := gateway.NewResult()
	res.SetRef(ref)
	res.AddMeta(exptypes.ExporterImageConfigKey, cfg)
	return res, nil
}

// comparableMD is exporter metadata with lade's own report left out and
// the descriptor's created annotation (the export's time) checked and
// blanked.
func comparableMD(t *testing.T, what string, md map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range md {
		if k == "lade.export" {
			continue
		}
		if k == exptypes.ExporterImageDescriptorKey {
			var d ocispec.Descriptor
			b, err := base64.StdEncoding.DecodeString(v)
			if err == nil {
				err = json.Unmarshal(b, &d)
			}
			if err != nil {
				t.Fatalf("%s: descriptor %q: %v", what, v, err)
			}
			if _, err := time.Parse(time.RFC3339, d.Annotations[ocispec.AnnotationCreated]); err != nil {
				t.Errorf("%s: descriptor's created annotation %q: %v", what, d.Annotations[ocispec.AnnotationCreated], err)
			}
			d.Annotations[ocispec.AnnotationCreated] = "(time)"
			b, _ = json.Marshal(d)
			v = string(b)
		}
		out[k] = v
	}
	return out
}

// TestStreamedTarMetadata: an OCI or docker tar sent to the client (the
// file buildctl writes for dest=FILE or dest=-) comes with stock's
// metadata (image name, digest, descriptor, config digest), and the
// build's response (--metadata-file) is stock's, single and
// multi-platform, without SOURCE_DATE_EPOCH (where lade by default streams
// the OCI tar while the layers are computed, and its metadata has the
// name only; --stock-compat sends it complete). type=docker has no
// multi-platform case: stock refuses it.
func TestStreamedTarMetadata(t *testing.T) {
	ld, sd := startDaemon(t, lade, "", "--stock-compat"), startDaemon(t, stock, "")
	plats := []ocispec.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	for _, typ := range []string{client.ExporterOCI, client.ExporterDocker} {
		for _, multi := range []bool{false, true} {
			if typ == client.ExporterDocker && multi {
				continue
			}
			build := gateway.BuildFunc(singleFrontend)
			if multi {
				build = platformsFrontend(plats, []int64{0, 0})
			}
			name := fmt.Sprintf("%s multi-platform=%v", typ, multi)
			var runs [2]gatewayRun
			for n, d := range []*daemon{ld, sd} {
				ex := client.ExportEntry{Type: typ, Attrs: map[string]string{"name": "x/y:1"}}
				runs[n] = gatewayBuild(t, d, ex, filepath.Join(t.TempDir(), "out.tar"), build)
			}
			if runs[1].fileMD[exptypes.ExporterImageDigestKey] == "" {
				t.Fatalf("%s: stock's file metadata has no digest: %v", name, runs[1].fileMD)
			}
			for _, c := range []struct {
				what       string
				lade, want map[string]string
			}{
				{"file metadata", runs[0].fileMD, runs[1].fileMD},
				{"response", runs[0].resp, runs[1].resp},
			} {
				l, s := comparableMD(t, name+" lade", c.lade), comparableMD(t, name+" stock", c.want)
				if !reflect.DeepEqual(l, s) {
					t.Errorf("%s: %s\n lade  %v\n stock %v", name, c.what, l, s)
				}
			}
		}
	}
	// By default lade starts an OCI tar while the layers are computed: its
	// file metadata names the image only (docs/buildkitd.md).
	ex := client.ExportEntry{Type: client.ExporterOCI, Attrs: map[string]string{"name": "x/y:1"}}
	def := gatewayBuild(t, startDaemon(t, lade, ""), ex, filepath.Join(t.TempDir(), "default.tar"), singleFrontend)
	if len(def.fileMD) != 1 || def.fileMD[exptypes.ExporterImageNameKey] != "docker.io/x/y:1" {
		t.Errorf("default lade-buildkitd's streamed tar metadata %v, want the image name only", def.fileMD)
	}
}
