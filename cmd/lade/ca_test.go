package main

import (
	"path/filepath"
	"testing"

	"github.com/lade-build/lade/internal/testutil"
)

// TestPushCustomCA: a registry speaking TLS with a private CA is refused
// unless --registry-ca names the CA.
func TestPushCustomCA(t *testing.T) {
	c := newRunner(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true})
	dir := filepath.Join(t.TempDir(), "rootfs")
	writeFile(t, filepath.Join(dir, "etc/hello"), "tls\n", 0o644)
	ref := reg.Host + "/tls:1"
	c.fail("certificate", "export", "--progress", "quiet", "-o", "type=image,name="+ref+",push=true", dir)
	c.ok("--registry-ca", reg.CAFile, "export", "--progress", "quiet", "-o", "type=image,name="+ref+",push=true", dir)
	if reg.Count("PUT", testutil.KindManifest) == 0 {
		t.Error("no manifest pushed over TLS")
	}
}
