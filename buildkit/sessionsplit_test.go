package buildkit

import (
	"bytes"
	"context"
	"testing"

	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/grpc"
)

// recordStream is a server stream that records what is sent on it.
type recordStream struct {
	grpc.ServerStream
	sent []any
}

func (r *recordStream) Context() context.Context { return context.Background() }

func (r *recordStream) SendMsg(m any) error {
	if bm, ok := m.(*controlapi.BytesMessage); ok {
		m = &controlapi.BytesMessage{Data: bytes.Clone(bm.Data)} // the sender may reuse its buffer
	}
	r.sent = append(r.sent, m)
	return nil
}

// TestSplitSessionMessages: a session's 32 KiB message goes out as parts
// that each encode in at most 32 KiB and together hold the same bytes;
// small messages, other message types and other methods are untouched.
func TestSplitSessionMessages(t *testing.T) {
	data := make([]byte, 3*sessionMessageMax+100)
	for i := range data {
		data[i] = byte(i * 31)
	}
	cases := []struct {
		method string
		msg    any
		want   int // messages sent
	}{
		{controlapi.Control_Session_FullMethodName, &controlapi.BytesMessage{Data: data[:32<<10]}, 2},
		{controlapi.Control_Session_FullMethodName, &controlapi.BytesMessage{Data: data}, 4},
		{controlapi.Control_Session_FullMethodName, &controlapi.BytesMessage{Data: data[:sessionMessageMax]}, 1},
		{controlapi.Control_Session_FullMethodName, &controlapi.StatusResponse{}, 1},
		{"/moby.buildkit.v1.Control/Status", &controlapi.BytesMessage{Data: data}, 1},
	}
	for _, c := range cases {
		rs := &recordStream{}
		err := SplitSessionMessages(nil, rs, &grpc.StreamServerInfo{FullMethod: c.method}, func(_ any, ss grpc.ServerStream) error {
			return ss.SendMsg(c.msg)
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs.sent) != c.want {
			t.Fatalf("%s %T: sent %d messages, want %d", c.method, c.msg, len(rs.sent), c.want)
		}
		in, ok := c.msg.(*controlapi.BytesMessage)
		if !ok {
			continue
		}
		var got []byte
		for _, m := range rs.sent {
			bm := m.(*controlapi.BytesMessage)
			if c.want > 1 && bm.SizeVT() > 32<<10 {
				t.Errorf("a part encodes in %d bytes, more than 32 KiB", bm.SizeVT())
			}
			got = append(got, bm.Data...)
		}
		if !bytes.Equal(got, in.Data) {
			t.Errorf("%s: parts hold %d bytes, not the %d sent", c.method, len(got), len(in.Data))
		}
	}
}
