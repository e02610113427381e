package registries

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

const sample = `
unqualified-search-registries = ["127.0.0.1:5001", "127.0.0.1:5002"]
short-name-mode = "permissive"
credential-helpers = ["containers-auth.json"]

[aliases]
"deb" = "127.0.0.1:5002/library/debian"

[[registry]]
prefix = "blocked.example.com"
blocked = true

[[registry]]
prefix = "example.com/team"
location = "127.0.0.1:5003/mirror/team"
insecure = true

[[registry.mirror]]
location = "mirror.example.com/team"

[[registry.mirror]]
location = "digest.example.com/team"
pull-from-mirror = "digest-only"

[[registry]]
prefix = "*.wild.example.com"
blocked = true
`

func mustParse(t *testing.T, s string) *Config {
	t.Helper()
	c, err := Parse("test.conf", []byte(s))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return c
}

func TestCandidates(t *testing.T) {
	c := mustParse(t, sample)
	for _, tc := range []struct{ in, want, origin string }{
		{"debian", "127.0.0.1:5001/debian:latest, 127.0.0.1:5002/debian:latest", "unqualified-search-registries"},
		{"x/y:1", "127.0.0.1:5001/x/y:1, 127.0.0.1:5002/x/y:1", "unqualified-search-registries"},
		{"deb", "127.0.0.1:5002/library/debian:latest", "alias in test.conf"},
		{"deb:12", "127.0.0.1:5002/library/debian:12", "alias in test.conf"},
		{"quay.io/a/b", "quay.io/a/b:latest", "fully qualified"},
		{"localhost/a", "localhost/a:latest", "fully qualified"},
	} {
		got, err := c.Candidates(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		var names []string
		for _, g := range got {
			names = append(names, g.Ref.String())
			if g.Origin != tc.origin {
				t.Errorf("%s: origin %q, want %q", tc.in, g.Origin, tc.origin)
			}
		}
		if s := strings.Join(names, ", "); s != tc.want {
			t.Errorf("%s: got %s, want %s", tc.in, s, tc.want)
		}
	}
}

func TestCandidatesDockerNormalization(t *testing.T) {
	var c *Config
	got, err := c.Candidates("debian")
	if err != nil || len(got) != 1 || got[0].Ref.String() != "docker.io/library/debian:latest" {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestEnforcingAmbiguous(t *testing.T) {
	c := mustParse(t, `unqualified-search-registries = ["a.example.com", "b.example.com"]`)
	_, err := c.Candidates("debian")
	if err == nil || !strings.Contains(err.Error(), "a.example.com/debian:latest, b.example.com/debian:latest") || !strings.Contains(err.Error(), "ambiguous") {
		t.Fatalf("want an ambiguity error listing both candidates, got %v", err)
	}
	one := mustParse(t, `unqualified-search-registries = ["a.example.com"]`)
	if got, err := one.Candidates("debian"); err != nil || len(got) != 1 {
		t.Fatalf("one search registry: %v, %v", got, err)
	}
	none := mustParse(t, `short-name-mode = "disabled"`)
	if _, err := none.Candidates("debian"); err == nil || !strings.Contains(err.Error(), "fully qualified") {
		t.Fatalf("no search registries: %v", err)
	}
}

func TestSources(t *testing.T) {
	c := mustParse(t, sample)
	ref := func(s string) reference.Named {
		n, err := reference.ParseNormalizedNamed(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	src, err := c.PullSources(ref("example.com/team/app:1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(src) != 2 || src[0].Ref != "mirror.example.com/team/app:1" || !src[0].Mirror ||
		src[1].Ref != "127.0.0.1:5003/mirror/team/app:1" || !src[1].Insecure {
		t.Fatalf("tag pull sources: %+v", src)
	}
	dg := "@sha256:" + strings.Repeat("a", 64)
	if src, _ := c.PullSources(ref("example.com/team/app" + dg)); len(src) != 3 || src[1].Ref != "digest.example.com/team/app"+dg {
		t.Fatalf("digest pull sources: %+v", src)
	}
	for _, b := range []string{"blocked.example.com/x", "a.wild.example.com/x"} {
		if _, err := c.PullSources(ref(b)); !errors.Is(err, ErrBlocked) {
			t.Errorf("%s: want ErrBlocked, got %v", b, err)
		}
		if _, err := c.PushTarget(ref(b)); !errors.Is(err, ErrBlocked) {
			t.Errorf("push %s: want ErrBlocked, got %v", b, err)
		}
	}
	if src, _ := c.PullSources(ref("other.example.com/x")); len(src) != 1 || src[0].Ref != "other.example.com/x" {
		t.Fatalf("unconfigured: %+v", src)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{`unqualified-search-registry = ["x"]`, "unknown key"},
		{`short-name-mode = "strict"`, "not one of enforcing"},
		{"[registries.search]\nregistries = [\"x\"]", "version 1"},
		{"[aliases]\n\"a\" = \"notqualified\"", "fully qualified"},
		{"[[registry]]\ninsecure = true", "prefix or a location"},
		{"[[registry]]\nlocation = \"https://x.example.com\"", "no scheme"},
		{"[[registry]]\nlocation = \"x.example.com\"\n[[registry.mirror]]\nlocation = \"m\"\npull-from-mirror = \"some\"", "pull-from-mirror"},
	} {
		_, err := Parse("bad.conf", []byte(tc.conf))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.conf") {
			t.Errorf("%q: want error with %q naming the file, got %v", tc.conf, tc.want, err)
		}
	}
}

func TestLoadMergesDropIns(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv(EnvConf, "")
	dir := filepath.Join(home, ".config", "containers")
	write := func(name, s string) {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "registries.conf"), "unqualified-search-registries = [\"a.example.com\"]\n[aliases]\n\"x\" = \"a.example.com/x\"\n")
	write(filepath.Join(dir, "registries.conf.d", "10-b.conf"), "unqualified-search-registries = [\"b.example.com\"]\n[aliases]\n\"y\" = \"b.example.com/y\"\n")
	write(filepath.Join(dir, "registries.conf.d", "ignored.txt"), "garbage")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Files) != 2 || strings.Join(c.SearchRegistries, ",") != "b.example.com" || len(c.Aliases) != 2 {
		t.Fatalf("merged config: %+v", c)
	}
	t.Setenv(EnvConf, filepath.Join(dir, "registries.conf"))
	if c, err := Load(""); err != nil || len(c.Files) != 1 {
		t.Fatalf("%s alone: %+v, %v", EnvConf, c, err)
	}
	if _, err := Load(filepath.Join(home, "missing.conf")); err == nil {
		t.Fatal("an explicit missing file must be an error")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("fuzz.conf", b)
		if err != nil {
			return
		}
		_, _ = c.Candidates("debian")
		_, _ = c.PullSources(reference.TagNameOnly(mustNamed("example.com/team/app")))
	})
}

func mustNamed(s string) reference.Named {
	n, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		panic(err)
	}
	return n
}
