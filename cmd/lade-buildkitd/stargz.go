package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	ctddocker "github.com/containerd/containerd/v2/core/remotes/docker"
	ctdsnapshot "github.com/containerd/containerd/v2/core/snapshots"
	ctdreference "github.com/containerd/containerd/v2/pkg/reference"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay/overlayutils"
	sgzfs "github.com/containerd/stargz-snapshotter/fs"
	sgzconf "github.com/containerd/stargz-snapshotter/fs/config"
	sgzlayer "github.com/containerd/stargz-snapshotter/fs/layer"
	sgzsource "github.com/containerd/stargz-snapshotter/fs/source"
	remotesn "github.com/containerd/stargz-snapshotter/snapshot"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/resolver"
	"github.com/pelletier/go-toml/v2"
	"github.com/sirupsen/logrus"
)

// The labels BuildKit puts on a lazily pulled layer's snapshot for the
// stargz snapshotter, each suffixed with ".<id>" per image reference.
const (
	stargzRefLabel     = "containerd.io/snapshot/remote/stargz.reference"
	stargzDigestLabel  = "containerd.io/snapshot/remote/stargz.digest"
	stargzLayersLabel  = "containerd.io/snapshot/remote/stargz.layers"
	stargzSessionLabel = "containerd.io/snapshot/remote/stargz.session"
)

// stargzSnapshotter returns the factory of the stargz snapshotter, which
// mounts eStargz layers lazily from their registry ([worker.oci]
// stargzSnapshotter configures it), as buildkitd's --oci-worker-snapshotter
// stargz.
func stargzSnapshotter(conf map[string]any, hosts ctddocker.RegistryHosts, sm *session.Manager) (func(string) (ctdsnapshot.Snapshotter, error), error) {
	var cfg sgzconf.Config
	if conf != nil {
		b, err := toml.Marshal(conf)
		if err == nil {
			err = toml.Unmarshal(b, &cfg)
		}
		if err != nil {
			return nil, fmt.Errorf("[worker.oci.stargzSnapshotter]: %w", err)
		}
	}
	return func(root string) (ctdsnapshot.Snapshotter, error) {
		opaque := sgzlayer.OverlayOpaqueTrusted
		userxattr, err := overlayutils.NeedsUserXAttr(root)
		if err != nil {
			bklog.L.WithError(err).Warnf("cannot detect whether \"userxattr\" option needs to be used, assuming to be %v", userxattr)
		}
		if userxattr {
			opaque = sgzlayer.OverlayOpaqueUser
		}
		fs, err := sgzfs.NewFilesystem(filepath.Join(root, "stargz"), cfg,
			sgzfs.WithGetSources(stargzSources(hosts, sm)),
			sgzfs.WithMetricsLogLevel(logrus.DebugLevel),
			sgzfs.WithOverlayOpaqueType(opaque))
		if err != nil {
			return nil, err
		}
		return remotesn.NewSnapshotter(context.Background(), filepath.Join(root, "snapshotter"), fs, remotesn.AsynchronousRemove, remotesn.NoRestore)
	}, nil
}

// stargzSources finds, from a snapshot's labels, the registries a lazy
// layer can be fetched from, authenticated through the build's sessions.
func stargzSources(hosts ctddocker.RegistryHosts, sm *session.Manager) sgzsource.GetSources {
	return func(labels map[string]string) ([]sgzsource.Source, error) {
		var out []sgzsource.Source
		for key, ref := range labels {
			id, ok := strings.CutPrefix(key, stargzRefLabel+".")
			if !ok {
				continue
			}
			named, err := ctdreference.Parse(ref)
			if err != nil {
				continue
			}
			var sessions []string
			for i := 0; ; i++ {
				sid, ok := labels[stargzSessionLabel+"."+strconv.Itoa(i)+"."+id]
				if !ok {
					break
				}
				sessions = append(sessions, sid)
			}
			parse := sgzsource.FromDefaultLabels(func(spec ctdreference.Spec) ([]ctddocker.RegistryHost, error) {
				return resolver.DefaultPool.GetResolver(hosts, named.String(), resolver.ScopeType{}, sm, session.NewGroup(sessions...)).HostsFunc(spec.Hostname())
			})
			src, err := parse(map[string]string{
				stargzRefLabel:    ref,
				stargzDigestLabel: labels[stargzDigestLabel+"."+id],
				stargzLayersLabel: labels[stargzLayersLabel+"."+id],
			})
			if err == nil {
				out = append(out, src...)
			}
		}
		return out, nil
	}
}
