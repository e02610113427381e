package push

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lade-build/lade/internal/testutil"
	"github.com/lade-build/lade/progress"
)

// writeDockerConfig writes v as config.json in a new temp dir and returns
// the dir.
func writeDockerConfig(t *testing.T, v any) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// basicAuth returns an auths entry with base64 user:pass.
func basicAuth(user, pass string) map[string]string {
	return map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}
}

func TestPushAuth(t *testing.T) {
	ctx := context.Background()
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{Auth: true})
	store := newStore(t)
	img := writeImage(t, store)
	ref := reg.Host + "/lade/private:v1"

	opts := fastRetries
	opts.DockerConfigDir = writeDockerConfig(t, map[string]any{
		"auths": map[string]any{reg.Host: basicAuth(reg.User, reg.Password)},
	})
	if err := Push(ctx, store, img.root, ref, opts); err != nil {
		t.Fatalf("push with credentials: %v", err)
	}
	if _, err := Pull(ctx, ref, newStore(t), opts); err != nil {
		t.Fatalf("pull with credentials: %v", err)
	}

	// Username/password form, keyed by URL, as "docker login" writes it.
	opts.DockerConfigDir = writeDockerConfig(t, map[string]any{
		"auths": map[string]any{"http://" + reg.Host + "/v2/": map[string]string{"username": reg.User, "password": reg.Password}},
	})
	if err := Push(ctx, store, img.root, ref, opts); err != nil {
		t.Fatalf("push with username/password: %v", err)
	}

	opts.DockerConfigDir = t.TempDir() // no config.json at all
	err := Push(ctx, store, img.root, ref, opts)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("anonymous push: %v, want a 401 error", err)
	}
	t.Logf("anonymous push: %v", err)

	rec := &progress.Recorder{}
	opts.Progress = rec
	const wrong = "not-the-password-c0ffee"
	opts.DockerConfigDir = writeDockerConfig(t, map[string]any{
		"auths": map[string]any{reg.Host: basicAuth(reg.User, wrong)},
	})
	err = Push(ctx, store, img.root, reg.Host+"/lade/other:v1", opts)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("push with a wrong password: %v, want a 401 error", err)
	}
	t.Logf("wrong password: %v", err)
	enc := base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + wrong))
	for _, s := range []string{wrong, enc} {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error leaks a credential: %v", err)
		}
		for _, e := range rec.Events() {
			if strings.Contains(e.Error, s) {
				t.Fatalf("progress leaks a credential: %v", e.Error)
			}
		}
	}
}

func TestPushCredentialHelper(t *testing.T) {
	ctx := context.Background()
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{Auth: true})
	store := newStore(t)
	img := writeImage(t, store)

	bin := t.TempDir()
	script := "#!/bin/sh\nread host\nif [ \"$host\" = \"" + reg.Host + "\" ]; then\n" +
		"  echo '{\"ServerURL\":\"'$host'\",\"Username\":\"" + reg.User + "\",\"Secret\":\"" + reg.Password + "\"}'\n" +
		"else\n  echo 'credentials not found in native keychain'; exit 1\nfi\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-ladetest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	for name, cfg := range map[string]any{
		"credsStore":  map[string]any{"credsStore": "ladetest"},
		"credHelpers": map[string]any{"credHelpers": map[string]string{reg.Host: "ladetest"}},
	} {
		t.Run(name, func(t *testing.T) {
			opts := fastRetries
			opts.DockerConfigDir = writeDockerConfig(t, cfg)
			if err := Push(ctx, store, img.root, reg.Host+"/lade/helper:"+strings.ToLower(name), opts); err != nil {
				t.Fatalf("push: %v", err)
			}
		})
	}
}

func TestCredentialsLookup(t *testing.T) {
	dir := writeDockerConfig(t, map[string]any{
		"auths": map[string]any{
			"https://index.docker.io/v1/": basicAuth("hubuser", "hubpass"),
			"registry.example:5000":       map[string]string{"username": "u", "password": "p"},
			"https://tok.example/":        map[string]string{"identitytoken": "refresh-me"},
			"bad.example":                 map[string]string{"auth": "!!!not base64 secret!!!"},
		},
	})
	c := newCredentials(dir)
	for _, tc := range []struct{ host, user, secret string }{
		{"registry-1.docker.io", "hubuser", "hubpass"},
		{"docker.io", "hubuser", "hubpass"},
		{"registry.example:5000", "u", "p"},
		{"tok.example", "", "refresh-me"},
		{"unknown.example", "", ""},
	} {
		user, secret, err := c.Get(tc.host)
		if err != nil || user != tc.user || secret != tc.secret {
			t.Errorf("Get(%s) = %q, %q, %v; want %q, %q", tc.host, user, secret, err, tc.user, tc.secret)
		}
	}
	if _, _, err := c.Get("bad.example"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad auth entry: %v", err)
	}
	if got := c.scrub("x hubpass y " + base64.StdEncoding.EncodeToString([]byte("u:p"))); strings.Contains(got, "hubpass") || strings.Contains(got, "dTpw") {
		t.Errorf("scrub left a secret: %q", got)
	}

	missing := newCredentials(t.TempDir())
	if u, s, err := missing.Get("any.example"); u != "" || s != "" || err != nil {
		t.Errorf("no config: %q %q %v", u, s, err)
	}
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "config.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := newCredentials(broken).Get("any.example"); err == nil {
		t.Error("broken config.json: no error")
	}
}

func TestCredentialsEnvDir(t *testing.T) {
	dir := writeDockerConfig(t, map[string]any{"auths": map[string]any{"env.example": basicAuth("e", "f")}})
	t.Setenv("DOCKER_CONFIG", dir)
	if u, s, err := newCredentials("").Get("env.example"); u != "e" || s != "f" || err != nil {
		t.Fatalf("DOCKER_CONFIG: %q %q %v", u, s, err)
	}
}
