package main

import (
	"path/filepath"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	ctddocker "github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/moby/buildkit/cache/remotecache"
	azblobremotecache "github.com/moby/buildkit/cache/remotecache/azblob"
	gharemotecache "github.com/moby/buildkit/cache/remotecache/gha"
	inlineremotecache "github.com/moby/buildkit/cache/remotecache/inline"
	localremotecache "github.com/moby/buildkit/cache/remotecache/local"
	registryremotecache "github.com/moby/buildkit/cache/remotecache/registry"
	s3remotecache "github.com/moby/buildkit/cache/remotecache/s3"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/session"
	policy "github.com/moby/policy-helpers"
)

// cacheBackends are the remote cache backends a build names with
// --export-cache type=T and --import-cache type=T: stock buildkitd's set
// (registry, local, inline, gha, s3, azblob; inline exports only, its
// import is a registry import of the image). The layers they carry are
// the refs' blobs, which lade's exporters share with BuildKit's cache, so
// an image's layers are the cache's layers.
type cacheBackends struct {
	exporters map[string]remotecache.ResolveCacheExporterFunc
	importers map[string]remotecache.ResolveCacheImporterFunc
}

// newCacheBackends wires the backends: registry and local reach the
// client's session (credentials, local directories) through sm, registry
// imports land in cs and reach registries through hosts ([registry] of
// buildkitd.toml); gha follows [cache.gha] of cfg (signing command,
// signature verification with its state under the root); s3 and azblob
// take everything from the build's attributes and environment.
func newCacheBackends(cfg *config.Config, sm *session.Manager, cs content.Store, hosts ctddocker.RegistryHosts) cacheBackends {
	gha := cfg.Cache.GHA
	var verifier gharemotecache.VerifierProvider
	if gha != nil && gha.Verify.Required {
		verifier = ghaVerifier(filepath.Join(cfg.Root, "policy"))
	}
	return cacheBackends{
		exporters: map[string]remotecache.ResolveCacheExporterFunc{
			"registry": registryremotecache.ResolveCacheExporterFunc(sm, hosts),
			"local":    localremotecache.ResolveCacheExporterFunc(sm),
			"inline":   inlineremotecache.ResolveCacheExporterFunc(),
			"gha":      gharemotecache.ResolveCacheExporterFunc(gha, verifier),
			"s3":       s3remotecache.ResolveCacheExporterFunc(),
			"azblob":   azblobremotecache.ResolveCacheExporterFunc(),
		},
		importers: map[string]remotecache.ResolveCacheImporterFunc{
			"registry": registryremotecache.ResolveCacheImporterFunc(sm, cs, hosts),
			"local":    localremotecache.ResolveCacheImporterFunc(sm),
			"gha":      gharemotecache.ResolveCacheImporterFunc(gha, verifier),
			"s3":       s3remotecache.ResolveCacheImporterFunc(),
			"azblob":   azblobremotecache.ResolveCacheImporterFunc(),
		},
	}
}

// ghaVerifier returns the verifier of signed GitHub Actions cache indexes
// ([cache.gha.verify] required = true), created on first use with its
// trust state in stateDir and kept for the daemon's life; a failure to
// create it is returned to every caller.
func ghaVerifier(stateDir string) gharemotecache.VerifierProvider {
	return sync.OnceValues(func() (*policy.Verifier, error) {
		return policy.NewVerifier(policy.Config{StateDir: stateDir})
	})
}
