package buildkit

import (
	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/grpc"
)

// sessionMessageMax is the most data SplitSessionMessages puts in one
// message: a BytesMessage of 32 KiB less 4 bytes encodes (field tag and
// length) in exactly 32 KiB, the largest of gRPC's pooled buffers below
// 1 MiB.
const sessionMessageMax = 32<<10 - 4

// SplitSessionMessages is a stream server interceptor for the daemon's
// gRPC server. A client's session (Control.Session) carries a gRPC
// connection of its own, tunnelled as a byte stream in BytesMessages
// (BuildKit's grpchijack): each write of the tunnelled connection's
// framer, whose buffer is 32 KiB, becomes one message sent to the client.
// A message of 32 KiB of data encodes in 4 bytes more, so gRPC takes a
// 1 MiB buffer from its pool for it, and clears all of it, both to send it
// here and to receive it in the client: 32 times the data in memory
// clearing on each side, about 0.3 CPU-seconds per side for an OCI
// tarball of 340 MB (issue #17). The interceptor sends the daemon's
// session messages in parts of at most sessionMessageMax bytes, which
// take 32 KiB buffers. The tunnel is a byte stream, so the client reads
// the same bytes; other methods pass through.
func SplitSessionMessages(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod != controlapi.Control_Session_FullMethodName {
		return handler(srv, ss)
	}
	return handler(srv, splitStream{ss})
}

// splitStream is a session's server stream whose large BytesMessages are
// sent in parts.
type splitStream struct{ grpc.ServerStream }

// SendMsg sends m, a BytesMessage of more than sessionMessageMax bytes as
// several.
func (s splitStream) SendMsg(m any) error {
	bm, ok := m.(*controlapi.BytesMessage)
	if !ok || len(bm.Data) <= sessionMessageMax {
		return s.ServerStream.SendMsg(m)
	}
	for d := bm.Data; len(d) > 0; {
		n := min(len(d), sessionMessageMax)
		if err := s.ServerStream.SendMsg(&controlapi.BytesMessage{Data: d[:n]}); err != nil {
			return err
		}
		d = d[n:]
	}
	return nil
}
