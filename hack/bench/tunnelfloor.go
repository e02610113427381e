package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/lade-build/lade/buildkit"
	controlapi "github.com/moby/buildkit/api/services/control"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/filesync"
	"github.com/moby/buildkit/session/grpchijack"
	"github.com/moby/buildkit/util/grpcerrors"
	"google.golang.org/grpc"
)

// tunnel delivers bytes to a file through the session protocol as a stock
// client speaks it to lade-buildkitd: buildctl's session (BuildKit's
// client.New on the daemon's socket, session.Session.Run with the
// client's dialer, filesync's SyncTarget writing the file) is a gRPC
// connection tunnelled as BytesMessages through the daemon's
// Control.Session stream (grpchijack); the daemon hands the hijacked
// stream to a session.Manager and sends the file with filesync's
// CopyFileWriter over the tunnelled connection, in lade's writes of
// buildkit.StreamChunk, with lade-buildkitd's SplitSessionMessages
// interceptor on its gRPC server. Both ends run in this process, over a
// unix socket, so the process's CPU time is the daemon's plus the
// client's. The goroutines of each side carry the pprof label side=daemon
// or side=client, so a CPU profile splits them.
type tunnel struct {
	dir, file string
	srv       *grpc.Server
	sm        *session.Manager
	client    *bkclient.Client
	sess      *session.Session
	stop      context.CancelFunc
	ran       chan struct{}
}

// sessionServer is a Control server that serves only Session, as
// buildkitd's control server does: it hijacks the stream into a
// connection and hands it to the session manager.
type sessionServer struct {
	controlapi.UnimplementedControlServer
	sm *session.Manager
}

// Session serves one client session until it ends.
func (s sessionServer) Session(stream controlapi.Control_SessionServer) error {
	conn, closed, md := grpchijack.Hijack(stream)
	defer conn.Close()
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		<-closed
		cancel()
	}()
	return s.sm.HandleConn(ctx, conn, md)
}

// newTunnel starts the daemon end on a unix socket in a new directory
// under parent (the file is written there too) and runs a client session
// against it. Its goroutines carry ctx's pprof labels besides their side.
// opts are added to the daemon's gRPC server options (for A/B tests).
func newTunnel(ctx context.Context, parent string, opts ...grpc.ServerOption) (t *tunnel, err error) {
	dir, err := os.MkdirTemp(parent, "tunnel-floor-")
	if err != nil {
		return nil, err
	}
	t = &tunnel{dir: dir, file: filepath.Join(dir, "out.tar"), ran: make(chan struct{})}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	sock := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		return t, err
	}
	if t.sm, err = session.NewManager(); err != nil {
		return t, err
	}
	t.srv = grpc.NewServer(append([]grpc.ServerOption{
		grpc.ChainStreamInterceptor(buildkit.SplitSessionMessages, grpcerrors.StreamServerInterceptor),
	}, opts...)...)
	controlapi.RegisterControlServer(t.srv, sessionServer{sm: t.sm})
	pprof.Do(ctx, pprof.Labels("side", "daemon"), func(context.Context) {
		go func() { _ = t.srv.Serve(l) }()
	})
	ctx, stop := context.WithCancel(ctx)
	t.stop = stop
	pprof.Do(ctx, pprof.Labels("side", "client"), func(ctx context.Context) {
		if t.client, err = bkclient.New(ctx, "unix://"+sock); err != nil {
			return
		}
		if t.sess, err = session.NewSession(ctx, "tunnel-floor"); err != nil {
			return
		}
		t.sess.Allow(filesync.NewFSSyncTarget(filesync.WithFSSync(0, func(map[string]string) (io.WriteCloser, error) {
			return os.Create(t.file)
		})))
		go func() {
			defer close(t.ran)
			_ = t.sess.Run(ctx, t.client.Dialer())
		}()
	})
	if err != nil {
		return t, fmt.Errorf("tunnel floor: client: %w", err)
	}
	return t, nil
}

// close ends the session, stops both ends and removes the directory.
func (t *tunnel) close() {
	if t.sess != nil {
		_ = t.sess.Close()
		<-t.ran
	}
	if t.stop != nil {
		t.stop()
	}
	if t.client != nil {
		_ = t.client.Close()
	}
	if t.srv != nil {
		t.srv.Stop()
	}
	_ = os.RemoveAll(t.dir)
}

// send delivers data to the file (replacing what it held), written
// buildkit.StreamChunk at a time as lade's OCI tar stream writes, and
// returns the CPU time it took, from opening the file's stream until the
// client closed the file.
func (t *tunnel) send(ctx context.Context, data []byte) (time.Duration, error) {
	return t.write(ctx, func(w io.Writer) error {
		for len(data) > 0 {
			n := min(len(data), buildkit.StreamChunk)
			if _, err := w.Write(data[:n]); err != nil {
				return err
			}
			data = data[n:]
		}
		return nil
	})
}

// write opens the session's file 0 with filesync's CopyFileWriter, as the
// daemon's exporter does, lets fn write it, closes it and returns the CPU
// time it took until the client closed the file.
func (t *tunnel) write(ctx context.Context, fn func(io.Writer) error) (cpu time.Duration, err error) {
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	caller, err := t.sm.Get(gctx, t.sess.ID(), false)
	if err != nil {
		return 0, fmt.Errorf("tunnel floor: no session: %w", err)
	}
	pprof.Do(ctx, pprof.Labels("side", "daemon"), func(ctx context.Context) {
		start := cpuTime()
		if err = sessionCopy(ctx, caller, fn); err == nil {
			cpu = cpuTime() - start
		}
	})
	return cpu, err
}

// sessionCopy writes the session's file 0 with fn.
func sessionCopy(ctx context.Context, caller session.Caller, fn func(io.Writer) error) error {
	w, err := filesync.CopyFileWriter(ctx, nil, 0, caller)
	if err != nil {
		return fmt.Errorf("tunnel floor: open file: %w", err)
	}
	if err := fn(w); err != nil {
		_ = w.Close()
		return fmt.Errorf("tunnel floor: send: %w", err)
	}
	// Close returns once the client has written and closed the file.
	if err := w.Close(); err != nil {
		return fmt.Errorf("tunnel floor: close: %w", err)
	}
	return nil
}
