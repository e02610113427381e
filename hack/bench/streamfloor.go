package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/moby/buildkit/session/filesync"
	_ "github.com/moby/buildkit/util/grpcutil/encoding/proto" // BuildKit's gRPC codec, as both ends use it
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// streamFloorChunk is the message size of the stream floor: BuildKit's
// file writer splits writes above 3 MiB and gRPC refuses received messages
// above 4 MiB; of 32 KiB, 64 KiB, 256 KiB, 1 MiB and 3 MiB messages, 1 MiB
// took the least CPU (0.23 s for 200 MiB, against 0.25 to 0.36 s).
const streamFloorChunk = 1 << 20

// streamer delivers bytes to a file through BuildKit's session protocol
// for a file output (type=oci/docker/tar tarballs): the daemon calls the
// client's FileSend.DiffCopy and sends the file as BytesMessages on that
// gRPC stream; the client (filesync's SyncTarget, as buildctl runs it)
// writes each message's data to the file. Both ends run in this process,
// over a unix socket, so the process's CPU time is the sender's plus the
// receiver's. It leaves out what a real session adds: the session's gRPC
// connection is itself tunnelled through a gRPC stream (BuildKit's
// grpchijack), which a cheaper protocol would not need. The oci case's
// floor is the tunnel's (tunnelfloor.go); this one is printed beside it.
type streamer struct {
	dir  string
	srv  *grpc.Server
	conn *grpc.ClientConn
	file string
}

// newStreamer starts the receiving end on a unix socket in a new
// directory under parent (the file is written there too) and connects to
// it.
func newStreamer(parent string) (*streamer, error) {
	dir, err := os.MkdirTemp(parent, "stream-floor-")
	if err != nil {
		return nil, err
	}
	s := &streamer{dir: dir, file: filepath.Join(dir, "out.tar")}
	sock := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s.srv = grpc.NewServer()
	filesync.NewFSSyncTarget(filesync.WithFSSync(0, func(map[string]string) (io.WriteCloser, error) {
		return os.Create(s.file)
	})).Register(s.srv)
	go func() { _ = s.srv.Serve(l) }()
	s.conn, err = grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// close stops both ends and removes the directory.
func (s *streamer) close() {
	if s.conn != nil {
		_ = s.conn.Close()
	}
	s.srv.Stop()
	_ = os.RemoveAll(s.dir)
}

// send delivers data to the file (replacing what it held) in
// streamFloorChunk messages and returns the CPU time it took, from opening
// the stream until the receiver closed the file.
func (s *streamer) send(ctx context.Context, data []byte) (time.Duration, error) {
	cpu := cpuTime()
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs("buildkit-attachable-exporter-id", "0"))
	stream, err := filesync.NewFileSendClient(s.conn).DiffCopy(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream floor: open stream: %w", err)
	}
	for len(data) > 0 {
		n := min(len(data), streamFloorChunk)
		if err := stream.SendMsg(&filesync.BytesMessage{Data: data[:n]}); err != nil {
			return 0, fmt.Errorf("stream floor: send: %w", err)
		}
		data = data[n:]
	}
	if err := stream.CloseSend(); err != nil {
		return 0, fmt.Errorf("stream floor: close: %w", err)
	}
	// The receiver returns once the file is written and closed.
	var bm filesync.BytesMessage
	if err := stream.RecvMsg(&bm); !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("stream floor: receiver: %w", err)
	}
	return cpuTime() - cpu, nil
}
