package main

import (
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lade-build/lade/internal/testutil"
)

// TestPush pushes to a real registry from export and from save, checks the
// pushed root with skopeo and that pushing again uploads nothing, then
// builds on the pushed image with --base docker://REF.
func TestPush(t *testing.T) {
	testutil.RequireTool(t, "skopeo")
	fx := newFixture(t)
	c := newRunner(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	ref := reg.Host + "/app:1"
	md := filepath.Join(t.TempDir(), "md.json")
	c.ok("export", "--progress", "quiet", "-f", fx.spec, "--metadata-file", md,
		"-o", "type=image,name="+ref+",push=true,registry.insecure=true")
	root := readMetadata(t, md)[0].Result.Descriptor.Digest
	if got := skopeoDigest(t, "docker://"+ref, "--tls-verify=false"); got != root {
		t.Errorf("registry has %s, metadata %s", got, root)
	}
	if got := c.inspect(ref).Digest; got != root {
		t.Errorf("lade inspect %s: %s, metadata %s", ref, got, root)
	}
	if reg.Uploads() == 0 {
		t.Fatal("the first push uploaded no blob")
	}

	reg.ResetCounts()
	c.ok("save", "--progress", "quiet", ref, "-o", "type=image,push=true,registry.insecure=true")
	ref2 := reg.Host + "/app:2"
	c.ok("save", "--progress", "quiet", ref, "-o", "type=image,name="+ref2+",push=true,registry.insecure=true")
	if n := reg.Uploads(); n != 0 {
		t.Errorf("pushing the same image again uploaded %d blobs, want 0", n)
	}
	if got := skopeoDigest(t, "docker://"+ref2, "--tls-verify=false"); got != root {
		t.Errorf("lade save pushed %s, want %s", got, root)
	}
	if !slices.Contains(c.images(), ref2) {
		t.Errorf("lade save -o type=image,name=%s: not in lade images %v", ref2, c.images())
	}
	c.checkClean()

	// A fresh store builds on the pushed image: --base docker://REF.
	top := filepath.Join(fx.dir, "top")
	writeFile(t, filepath.Join(top, "etc/motd"), "on a pulled base\n", 0o644)
	pulled := newRunner(t)
	md2 := filepath.Join(t.TempDir(), "md.json")
	pulled.ok("export", "--progress", "quiet", "--base", "docker://"+ref, "--platform", "linux/arm64",
		"--metadata-file", md2, "-o", "type=image,name=pulled:1", top)
	base := c.inspect(ref).Images[1]
	checkOnBase(t, base, pulled.inspect("pulled:1").Images[0], readMetadata(t, md2)[0].Result.Platforms[0].Layers)
	pulled.checkClean()
}

// TestPushAuth pushes to a registry with basic auth: with the credentials
// of a docker config it works; without them, or with wrong ones, it fails
// with one line that shows no secret, and names nothing in the store.
func TestPushAuth(t *testing.T) {
	testutil.RequireTool(t, "skopeo")
	fx := newFixture(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{Auth: true})
	ref := reg.Host + "/private/app:1"
	push := []string{"export", "--progress", "quiet", "--platform", "linux/amd64",
		"-o", "type=image,name=" + ref + ",push=true,registry.insecure=true", fx.layers[0]}

	c := newRunner(t)
	c.env = []string{"DOCKER_CONFIG=" + dockerConfig(t, reg.Host, reg.User, reg.Password)}
	c.ok(push...)
	local := c.inspect(ref).Digest
	if got := skopeoDigest(t, "docker://"+ref, "--tls-verify=false", "--creds", reg.User+":"+reg.Password); got != local {
		t.Errorf("registry has %s, lade inspect %s", got, local)
	}

	wrong := "not-the-password-0123456789"
	for _, tc := range []struct {
		name, config, want string
		secrets            []string
	}{
		{"no credentials", t.TempDir(), "has no credentials for it", []string{reg.Password}},
		{"wrong credentials", dockerConfig(t, reg.Host, reg.User, wrong), "rejected the credentials", []string{reg.Password, wrong, basicAuth(reg.User, wrong)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newRunner(t)
			c.env = []string{"DOCKER_CONFIG=" + tc.config}
			r := c.fail(tc.want, push...)
			t.Logf("stderr: %s", r.stderr)
			for _, s := range tc.secrets {
				if strings.Contains(r.stderr+r.stdout, s) {
					t.Errorf("the output shows the secret %q\n%s", s, r)
				}
			}
			if names := c.images(); len(names) != 0 {
				t.Errorf("failed push left images %v", names)
			}
			c.checkClean()
		})
	}
}

// dockerConfig writes a docker config.json with base64 "auth" for host and
// returns its directory (for DOCKER_CONFIG).
func dockerConfig(t *testing.T, host, user, password string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"auths": map[string]any{host: map[string]string{"auth": basicAuth(user, password)}}}
	b, err := json.Marshal(cfg)
	must(t, err)
	writeFile(t, filepath.Join(dir, "config.json"), string(b), 0o600)
	return dir
}

// basicAuth is the base64 "user:password" of a docker config "auth".
func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}
