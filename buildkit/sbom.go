package buildkit

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	intoto "github.com/in-toto/in-toto-golang/in_toto"
	bkcache "github.com/moby/buildkit/cache"
	bkexporter "github.com/moby/buildkit/exporter"
	"github.com/moby/buildkit/exporter/attestation"
	gatewaypb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver/result"
	"github.com/moby/buildkit/version"
	digest "github.com/opencontainers/go-digest"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"
)

// supplementSBOMs gives the files of the image's core SPDX SBOM (the one
// the scanner made of the image's own filesystem) the layer that created
// each, as a "layerID: <blob digest>" comment, as BuildKit does. layers
// are the blob digests of ref's chain, bottom first. Other attestations,
// SBOMs that do not decode and files that already have a comment are left
// as they are.
func supplementSBOMs(ctx context.Context, sg session.Group, ref bkcache.ImmutableRef, layers []digest.Digest, atts []bkexporter.Attestation) error {
	if ref == nil {
		return nil
	}
	var finder *layerFinder
	defer func() {
		if finder != nil {
			finder.release(context.WithoutCancel(ctx))
		}
	}()
	for n, att := range atts {
		if !isCoreSBOM(att) {
			continue
		}
		data, err := attestation.ReadAll(ctx, sg, att)
		if err != nil {
			return err
		}
		doc, err := spdxjson.Read(bytes.NewReader(data))
		if err != nil || doc == nil {
			continue // not SPDX lade can read: kept as it is, as in BuildKit
		}
		if finder == nil {
			chain := ref.LayerChain()
			if len(layers) == len(chain)+1 {
				layers = layers[:len(chain)] // lade's empty layer of an all-empty chain
			}
			if len(chain) != len(layers) {
				chain.Release(context.WithoutCancel(ctx))
				return fmt.Errorf("SBOM layers: %d refs in the chain for %d layers", len(chain), len(layers))
			}
			finder = &layerFinder{refs: chain, layers: layers, next: len(chain) - 1, seen: map[string]digest.Digest{}}
		}
		if err := finder.comment(ctx, sg, doc); err != nil {
			return err
		}
		doc.CreationInfo = orEmpty(doc.CreationInfo)
		doc.CreationInfo.Creators = append(doc.CreationInfo.Creators, common.Creator{CreatorType: "Tool", Creator: "buildkit-" + version.Version})
		var out bytes.Buffer
		if err := spdxjson.Write(doc, &out); err != nil {
			return fmt.Errorf("encode SBOM: %w", err)
		}
		dt := out.Bytes()
		atts[n] = bkexporter.Attestation{
			Kind: att.Kind, Path: att.Path, InToto: att.InToto,
			ContentFunc: func(context.Context) ([]byte, error) { return dt, nil },
		}
	}
	return nil
}

// isCoreSBOM reports whether att is the SPDX SBOM of the image's own
// filesystem (its file is named after the core SBOM's name).
func isCoreSBOM(att bkexporter.Attestation) bool {
	if att.Kind != gatewaypb.AttestationKind_InToto || att.InToto.PredicateType != intoto.PredicateSPDX {
		return false
	}
	name, ok := att.Metadata[result.AttestationSBOMCore]
	base, _, _ := strings.Cut(filepath.Base(att.Path), ".")
	return ok && base == string(name)
}

func orEmpty(c *spdx.CreationInfo) *spdx.CreationInfo {
	if c == nil {
		return &spdx.CreationInfo{}
	}
	return c
}

// layerFinder finds the layer that created a file, reading the layers'
// file lists top first, only as far as needed, and remembering them.
type layerFinder struct {
	refs   bkcache.RefList
	layers []digest.Digest
	// next is the next layer to read, counting down.
	next int
	seen map[string]digest.Digest
}

// comment sets the layer comment of every file of doc without a comment.
func (f *layerFinder) comment(ctx context.Context, sg session.Group, doc *spdx.Document) error {
	files := doc.Files
	for _, p := range doc.Packages {
		if p != nil {
			files = append(files, p.Files...)
		}
	}
	for _, file := range files {
		if file == nil || file.FileComment != "" {
			continue
		}
		d, err := f.find(ctx, sg, path.Join("/", file.FileName))
		if err != nil {
			return err
		}
		if d != "" {
			file.FileComment = "layerID: " + d.String()
		}
	}
	return nil
}

// find returns the layer that created name (the topmost that has it), ""
// when none has.
func (f *layerFinder) find(ctx context.Context, sg session.Group, name string) (digest.Digest, error) {
	for {
		if d, ok := f.seen[name]; ok {
			return d, nil
		}
		if f.next < 0 {
			return "", nil
		}
		n := f.next
		f.next--
		list, err := f.refs[n].FileList(ctx, sg)
		if err != nil {
			return "", fmt.Errorf("files of layer %s: %w", f.layers[n], err)
		}
		for _, p := range list {
			p = path.Join("/", p)
			if strings.HasPrefix(path.Base(p), ".wh.") {
				continue // a deletion, not a creation
			}
			if _, ok := f.seen[p]; !ok {
				f.seen[p] = f.layers[n]
			}
		}
	}
}

// release releases the chain's refs.
func (f *layerFinder) release(ctx context.Context) {
	_ = f.refs.Release(ctx)
}
