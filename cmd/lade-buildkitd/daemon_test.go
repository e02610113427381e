package main

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// TestNotify: with NOTIFY_SOCKET set, as systemd sets it for a
// Type=notify unit, the daemon's states reach the socket.
func TestNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	notify(sddaemon.SdNotifyReady)
	buf := make([]byte, 64)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != sddaemon.SdNotifyReady {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}
