//go:build integration

package frontendtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lade-build/lade/internal/testutil"
)

// tlsFiles are the PEM files of a test CA, a server certificate for
// 127.0.0.1 and a client certificate, all made by openssl.
type tlsFiles struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

// makeTLS creates a CA and the server and client certificates it signs.
func makeTLS(t *testing.T) tlsFiles {
	t.Helper()
	testutil.RequireTool(t, "openssl")
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	openssl := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=lade test CA",
		"-keyout", p("ca-key.pem"), "-out", p("ca.pem"))
	sign := func(name, subj, ext string) {
		if err := os.WriteFile(p(name+".ext"), []byte(ext), 0o644); err != nil {
			t.Fatal(err)
		}
		openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subj, "-keyout", p(name+"-key.pem"), "-out", p(name+".csr"))
		openssl("x509", "-req", "-in", p(name+".csr"), "-CA", p("ca.pem"), "-CAkey", p("ca-key.pem"), "-CAcreateserial",
			"-days", "1", "-extfile", p(name+".ext"), "-out", p(name+".pem"))
	}
	sign("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
	sign("client", "/CN=lade test client", "extendedKeyUsage=clientAuth\n")
	return tlsFiles{p("ca.pem"), p("server.pem"), p("server-key.pem"), p("client.pem"), p("client-key.pem")}
}

// TestTLS: a tcp listener with --tlscert/--tlskey/--tlscacert serves
// buildctl presenting a client certificate the CA signed, as stock
// buildkitd; buildctl without a client certificate, or in plaintext, is
// refused, and the unix socket of the same daemon stays plain; buildx's
// remote driver with cacert, cert and key driver options builds.
func TestTLS(t *testing.T) {
	f := makeTLS(t)
	tcp := "tcp://" + freeTCPAddr(t)
	withCert := []string{"--tlscacert", f.ca, "--tlscert", f.clientCert, "--tlskey", f.clientKey}
	d := startLadeWith(t, ladeRun{
		args:     []string{"--addr", tcp, "--tlscert", f.serverCert, "--tlskey", f.serverKey, "--tlscacert", f.ca},
		addr:     tcp,
		ctlFlags: withCert,
	})
	ctx := contextDir(t, mainDockerfile, nil)
	out, err := runBuildctl(context.Background(), t, tcp, withCert, dockerfileBuildArgs(ctx, "--output", "type=oci,dest="+filepath.Join(t.TempDir(), "o.tar"))...)
	if err != nil || !strings.Contains(out, "exporting manifest") {
		t.Fatalf("build with a client certificate: %v\n%s", err, out)
	}
	refused := map[string][]string{
		"no client certificate": {"--tlscacert", f.ca},
		"plaintext":             nil,
	}
	for name, flags := range refused {
		out, err := runBuildctl(context.Background(), t, tcp, flags, "debug", "workers")
		if err == nil {
			t.Errorf("%s: buildctl reached the daemon:\n%s", name, out)
		}
	}
	if out, err := runBuildctl(context.Background(), t, d.addr, nil, "debug", "workers"); err != nil {
		t.Errorf("unix socket next to the TLS listener: %v\n%s", err, out)
	}
	if !strings.Contains(d.log.String(), "TLS is disabled for "+d.addr) {
		t.Errorf("no warning that the unix socket is not TLS:\n%s", d.log.Tail(20))
	}

	// buildx's remote driver, as remote builders are set up.
	testutil.RequireTool(t, "buildx")
	buildx := buildxRunner(t)
	buildx("create", "--name", "lade-tls", "--driver", "remote",
		"--driver-opt", "cacert="+f.ca+",cert="+f.clientCert+",key="+f.clientKey, tcp)
	checkBuildxInspect(t, buildx("inspect", "--bootstrap", "lade-tls"))
	out = buildx("--builder", "lade-tls", "build", "--progress", "plain", "--provenance=false",
		"--output", "type=oci,dest="+filepath.Join(t.TempDir(), "x.tar"), ctx)
	mustContain(t, "buildx build over TLS", out, "exporting to oci image format", "exporting with lade")
}

// TestTLSConfigErrors: TLS settings buildkitd refuses are refused at start
// with what to fix: a certificate without its key, an unreadable CA.
func TestTLSConfigErrors(t *testing.T) {
	f := makeTLS(t)
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"cert without key": {[]string{"--tlscert", f.serverCert}, "you must specify key and cert file"},
		"missing CA":       {[]string{"--tlscert", f.serverCert, "--tlskey", f.serverKey, "--tlscacert", "/nonexistent/ca.pem"}, "could not read ca certificate"},
		"key is no CA":     {[]string{"--tlscert", f.serverCert, "--tlskey", f.serverKey, "--tlscacert", f.serverKey}, "failed to append ca cert"},
	} {
		dir := t.TempDir()
		args := append([]string{"--root", dir, "--addr", "tcp://" + freeTCPAddr(t)}, c.args...)
		out, err := exec.Command(filepath.Join(binDir(t), lade), args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: err %v, want %q in:\n%s", name, err, c.want, out)
		}
	}
}
