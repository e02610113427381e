//go:build integration

package frontendtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// gatewayRun is what one client-side build returned.
type gatewayRun struct {
	// resp is the exporter's response (what --metadata-file holds).
	resp map[string]string
	// fileMD is the metadata the daemon sent with the exported file (the
	// exporter-md-* headers a client's Output function receives).
	fileMD map[string]string
}

// gatewayBuild runs build on d as a frontend run by the client (as buildx
// does), exports its result with ex and returns the response. A tar
// output (ex.Output nil, dest set) is written to dest and its file
// metadata recorded.
func gatewayBuild(t *testing.T, d *daemon, ex client.ExportEntry, dest string, build gateway.BuildFunc) gatewayRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := client.New(ctx, d.addr)
	if err != nil {
		t.Fatalf("connect to %s: %v", d.kind, err)
	}
	defer c.Close()
	var run gatewayRun
	var mu sync.Mutex
	if dest != "" && ex.OutputDir == "" {
		ex.Output = func(md map[string]string) (io.WriteCloser, error) {
			mu.Lock()
			run.fileMD = md
			mu.Unlock()
			return os.Create(dest)
		}
	}
	ch := make(chan *client.SolveStatus)
	drained := make(chan struct{})
	go func() {
		for range ch {
		}
		close(drained)
	}()
	res, err := c.Build(ctx, client.SolveOpt{Exports: []client.ExportEntry{ex}}, "", build, ch)
	<-drained
	if err != nil {
		t.Fatalf("build on %s (%s %v): %v", d.kind, ex.Type, ex.Attrs, err)
	}
	run.resp = res.ExporterResponse
	return run
}

// platformsFrontend is a frontend returning, for each platform, the same
// one-file layer (file time 2025-01-01, so that the daemons' solvers give
// both platforms one ref), the platform map, a config with times after the
// epochs and, as dockerui does for a multi-platform build, the platform's
// own SOURCE_DATE_EPOCH under source.date.epoch/<platform>, from epochs
// (0: none).
func platformsFrontend(plats []ocispec.Platform, epochs []int64) gateway.BuildFunc {
	return func(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
		mtime := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		st := llb.Scratch().File(llb.Mkfile("/file", 0o644, []byte("data\n"), llb.WithCreatedTime(mtime)))
		def, err := st.Marshal(ctx)
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
		res := gateway.NewResult()
		var ps exptypes.Platforms
		for n, p := range plats {
			id := platforms.Format(p)
			ps.Platforms = append(ps.Platforms, exptypes.Platform{ID: id, Platform: p})
			res.AddRef(id, ref)
			cfg, err := json.Marshal(map[string]any{
				"os": p.OS, "architecture": p.Architecture, "created": mtime,
				"config":  map[string]any{"Env": []string{"PLATFORM=" + id}},
				"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{}},
				"history": []map[string]any{{"created": mtime, "created_by": "mkfile /file"}},
			})
			if err != nil {
				return nil, err
			}
			res.AddMeta(exptypes.ExporterImageConfigKey+"/"+id, cfg)
			if epochs[n] != 0 {
				res.AddMeta(fmt.Sprintf("source.date.epoch/%s", id), []byte(strconv.FormatInt(epochs[n], 10)))
			}
		}
		b, err := json.Marshal(ps)
		if err != nil {
			return nil, err
		}
		res.AddMeta(exptypes.ExporterPlatformsKey, b)
		return res, nil
	}
}
