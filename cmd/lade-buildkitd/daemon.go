package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/sys"
	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/gofrs/flock"
	"github.com/lade-build/lade/buildkit"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/control"
	"github.com/moby/buildkit/frontend"
	dockerfile "github.com/moby/buildkit/frontend/dockerfile/builder"
	"github.com/moby/buildkit/frontend/gateway"
	"github.com/moby/buildkit/frontend/gateway/forwarder"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/solver/bboltcachestorage"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/cachedigest"
	"github.com/moby/buildkit/util/db/boltutil"
	"github.com/moby/buildkit/util/db/compaction"
	"github.com/moby/buildkit/util/grpcerrors"
	_ "github.com/moby/buildkit/util/grpcutil/encoding/proto" // BuildKit's gRPC codec
	"github.com/moby/buildkit/util/resolver"
	"github.com/moby/buildkit/worker"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthv1 "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// daemon is a running lade-buildkitd: the root lock, the listeners, the
// controller and the gRPC server.
type daemon struct {
	lock       *flock.Flock
	listeners  []net.Listener
	controller *control.Controller
	server     *grpc.Server
	cacheDebug *cachedigest.DB
	telemetry  *telemetry
}

// newDaemon locks the root, opens the listeners, creates the workers and
// the controller and registers BuildKit's API; saveCacheDebug records
// cache keys' inputs in cache-debug.db, as buildkitd's --save-cache-debug.
func newDaemon(ctx context.Context, cfg config.Config, differ string, saveCacheDebug bool) (d *daemon, err error) {
	d = &daemon{lock: flock.New(filepath.Join(cfg.Root, "buildkitd.lock"))}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	locked, err := d.lock.TryLock()
	if err != nil {
		return d, fmt.Errorf("lock %s: %w", d.lock.Path(), err)
	}
	if !locked {
		return d, fmt.Errorf("could not lock %s: is another daemon using %s?", d.lock.Path(), cfg.Root)
	}
	if d.listeners, err = listen(cfg.GRPC); err != nil {
		return d, err
	}
	if saveCacheDebug {
		db, err := cachedigest.NewDB(filepath.Join(cfg.Root, "cache-debug.db"))
		if err != nil {
			return d, fmt.Errorf("failed to create cache debug db: %w", err)
		}
		cachedigest.SetDefaultDB(db)
		d.cacheDebug = db
	}
	if d.telemetry, err = newTelemetry(ctx, cfg.OTEL.SocketPath); err != nil {
		return d, err
	}
	if d.controller, err = newController(ctx, &cfg, differ, d.telemetry); err != nil {
		return d, err
	}
	d.server = grpc.NewServer(
		d.telemetry.statsHandler(),
		grpc.ChainUnaryInterceptor(logErrors, grpcerrors.UnaryServerInterceptor),
		grpc.ChainStreamInterceptor(buildkit.SplitSessionMessages, grpcerrors.StreamServerInterceptor), // see SplitSessionMessages
		grpc.MaxRecvMsgSize(defaults.DefaultMaxRecvMsgSize),
		grpc.MaxSendMsgSize(defaults.DefaultMaxSendMsgSize),
	)
	healthv1.RegisterHealthServer(d.server, health.NewServer())
	d.controller.Register(d.server)
	reflection.Register(d.server) // as buildkitd: grpcurl and friends list the API
	return d, nil
}

// serve serves every listener until ctx ends or one fails. Under systemd
// (NOTIFY_SOCKET set, a Type=notify unit as BuildKit's examples use) it
// reports ready and stopping, as buildkitd does.
func (d *daemon) serve(ctx context.Context) error {
	notify(sddaemon.SdNotifyReady)
	eg, ectx := errgroup.WithContext(ctx)
	for _, l := range d.listeners {
		eg.Go(func() error {
			bklog.L.Infof("running server on %s", l.Addr())
			return d.server.Serve(l)
		})
	}
	eg.Go(func() error {
		<-ectx.Done()
		bklog.G(ctx).Info("stopping server") // with TRACEPARENT's trace, as buildkitd
		notify(sddaemon.SdNotifyStopping)
		d.server.GracefulStop()
		return nil
	})
	err := eg.Wait()
	if errors.Is(err, grpc.ErrServerStopped) || ctx.Err() != nil {
		return nil
	}
	return err
}

// notify sends state to systemd when it started the daemon.
func notify(state string) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	sent, err := sddaemon.SdNotify(false, state)
	bklog.L.Debugf("systemd notify %q: sent=%v, err=%v", state, sent, err)
}

// close releases what newDaemon took, in reverse order.
func (d *daemon) close() {
	if d.server != nil {
		d.server.Stop()
	}
	if d.controller != nil {
		if err := d.controller.Close(); err != nil {
			bklog.L.WithError(err).Warn("closing controller")
		}
	}
	for _, l := range d.listeners {
		_ = l.Close()
	}
	if d.cacheDebug != nil {
		_ = d.cacheDebug.Close()
	}
	if d.telemetry != nil {
		d.telemetry.close(context.Background())
	}
	if d.lock.Locked() {
		_ = d.lock.Unlock()
		_ = os.Remove(d.lock.Path())
	}
}

// newController wires the workers, frontends, caches and session manager
// into BuildKit's controller, as buildkitd does; the default worker's
// content store and leases serve the controller.
func newController(ctx context.Context, cfg *config.Config, differ string, tel *telemetry) (*control.Controller, error) {
	policy, err := cfg.Compaction.Policy()
	if err != nil {
		return nil, fmt.Errorf("invalid [compaction] configuration: %w", err)
	}
	var policies []compaction.Config
	if cfg.Compaction.Enabled || cfg.GRPC.DebugAddress != "" { // manual-only unless enabled, for /debug/compaction
		policies = append(policies, policy)
	}
	sm, err := session.NewManager()
	if err != nil {
		return nil, err
	}
	common := workerCommon{sessions: sm, compaction: policies, traceSocket: cfg.OTEL.SocketPath}
	if common.cdi, err = cdiManager(cfg.CDI); err != nil {
		return nil, err
	}
	wc, err := newWorkerController(ctx, cfg, differ, common)
	if err != nil {
		return nil, err
	}
	w, err := wc.GetDefault()
	if err != nil {
		return nil, err
	}
	frontends := map[string]frontend.Frontend{}
	if e := cfg.Frontends.Dockerfile.Enabled; e == nil || *e {
		frontends["dockerfile.v0"] = forwarder.NewGatewayForwarder(wc.Infos(), dockerfile.Build)
	}
	if e := cfg.Frontends.Gateway.Enabled; e == nil || *e {
		gw, err := gateway.NewGatewayFrontend(wc.Infos(), cfg.Frontends.Gateway.AllowedRepositories)
		if err != nil {
			return nil, err
		}
		frontends["gateway.v0"] = gw
	}
	cacheStorage, err := bboltcachestorage.NewStore(filepath.Join(cfg.Root, "cache.db"), policies...)
	if err != nil {
		return nil, err
	}
	debugCache.set(cacheStorage) // for /debug/cache/store
	historyDB, err := boltutil.SafeOpen(filepath.Join(cfg.Root, "history.db"), 0o600,
		&bolt.Options{FreelistType: bolt.FreelistMapType, NoFreelistSync: true}, policies...)
	if err != nil {
		return nil, err
	}
	if cfg.CDI.Disabled == nil || !*cfg.CDI.Disabled {
		cfg.Entitlements = append(cfg.Entitlements, "device")
	}
	provenanceEnv, err := loadProvenanceEnv(cfg.ProvenanceEnvDir)
	if err != nil {
		return nil, err
	}
	caches := newCacheBackends(cfg, sm, w.ContentStore(), resolver.NewRegistryConfig(cfg.Registries))
	return control.NewController(control.Opt{
		SessionManager:   sm,
		WorkerController: wc,
		Frontends:        frontends,

		// --export-cache and --import-cache backends (cache.go).
		ResolveCacheExporterFuncs: caches.exporters,
		ResolveCacheImporterFuncs: caches.importers,

		CacheManager:   solver.NewCacheManager(ctx, "local", cacheStorage, worker.NewCacheResultStorage(wc)),
		Entitlements:   cfg.Entitlements,
		HistoryDB:      historyDB,
		CacheStore:     cacheStorage,
		LeaseManager:   w.LeaseManager(),
		ContentStore:   w.ContentStore(),
		HistoryConfig:  cfg.History,
		ProxyNetwork:   cfg.ProxyNetwork,
		GarbageCollect: w.GarbageCollect,
		GracefulStop:   ctx.Done(),
		ProvenanceEnv:  provenanceEnv,
		// Traces clients send are kept in memory for the build history and
		// go to the OTEL exporter if one is configured, as in buildkitd.
		TraceCollector: tel.collector,
		MeterProvider:  tel.meter,
	})
}

// listen opens the gRPC listeners: unix sockets (owned by the configured
// uid/gid), tcp (with TLS when [grpc.tls] or --tlscert/--tlskey are set,
// client certificates required with a CA) and fd:// (systemd socket
// activation).
func listen(g config.GRPCConfig) ([]net.Listener, error) {
	tlsConfig, err := serverTLS(g.TLS)
	if err != nil {
		return nil, err
	}
	var out []net.Listener
	for _, addr := range g.Address {
		l, err := listenOn(addr, *g.UID, *g.GID, tlsConfig)
		if err != nil {
			for _, o := range out {
				_ = o.Close()
			}
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// listenOn opens one listening address.
func listenOn(addr string, uid, gid int, tlsConfig *tls.Config) (net.Listener, error) {
	proto, path, ok := strings.Cut(addr, "://")
	if !ok {
		return nil, fmt.Errorf("address %s does not contain proto, you meant unix://%s ?", addr, addr)
	}
	switch proto {
	case "unix":
		if tlsConfig != nil {
			bklog.L.Warnf("TLS is disabled for %s", addr)
		}
		return sys.GetLocalListener(path, uid, gid)
	case "tcp":
		l, err := net.Listen("tcp", path)
		if err != nil {
			return nil, err
		}
		if tlsConfig == nil {
			bklog.L.Warnf("TLS is not enabled for %s. enabling mutual TLS authentication is highly recommended", addr)
			return l, nil
		}
		return tls.NewListener(l, tlsConfig), nil
	case "fd":
		return activatedListener(path, tlsConfig)
	}
	return nil, fmt.Errorf("address %s: use unix://, tcp:// or fd://", addr)
}

// groupID resolves a group name or number.
func groupID(group string) (int, error) {
	if id, err := strconv.Atoi(group); err == nil {
		return id, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// logErrors logs the errors of unary calls, as buildkitd does.
func logErrors(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil {
		bklog.G(ctx).Errorf("%s returned error: %v", info.FullMethod, err)
	}
	return resp, err
}
