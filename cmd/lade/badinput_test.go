package main

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// TestBadInputs runs lade on one mistake at a time: each must exit
// non-zero with one clear line on stderr, and leave nothing half-written:
// no destination file (nor temp file beside it), no image name, a
// consistent store.
func TestBadInputs(t *testing.T) {
	fx := newFixture(t)
	c := newRunner(t)
	in := t.TempDir()
	p := func(name string) string { return filepath.Join(in, name) }
	must(t, syscall.Mkfifo(p("fifo"), 0o644))
	writeFile(t, p("regular"), "a file, not a directory\n", 0o644)
	writeFile(t, p("notatar"), "hello\n", 0o644)
	writeFile(t, p("broken.yaml"), "platforms: [{platform: linux/amd64, layers: [l1\n", 0o644)
	writeFile(t, p("typo.yaml"), "platforms: [{platform: linux/amd64, layer: [l1]}]\n", 0o644)
	writeFile(t, p("garbage.json"), "garbage{\n", 0o644)
	writeFile(t, p("surplus.json"), `{"history":[{"created_by":"a"},{"created_by":"b"},{"created_by":"c"}]}`, 0o644)
	l1, l2 := fx.layers[0], fx.layers[1]
	out := t.TempDir()
	dest := filepath.Join(out, "app.tar")
	oci := "type=oci,dest=" + dest

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing layer dir", []string{"-o", oci, p("nonexistent")}, "no such file or directory"},
		{"fifo layer", []string{"-o", oci, p("fifo")}, "is neither a directory nor a tar file"},
		{"not a tar", []string{"-o", oci, l1, p("notatar")}, "read tar"},
		{"dest under a file", []string{"-o", "type=oci,dest=" + p("regular") + "/app.tar", l1}, "not a directory"},
		{"layout under a file", []string{"-o", "type=oci,tar=false,dest=" + p("regular") + "/layout", l1}, "not a directory"},
		{"metadata file under a file", []string{"--metadata-file", p("regular") + "/md.json", "-o", oci, l1}, "not a directory"},
		{"registry down", []string{"-o", "type=image,name=127.0.0.1:1/app:1,push=true,registry.insecure=true", l1}, "connection refused"},
		{"unknown attribute", []string{"-o", oci + ",compresion=zstd", l1}, `unknown attribute "compresion": did you mean "compression"?`},
		{"invalid platform", []string{"--platform", "linux/arm64/v8/extra", "-o", oci, l1}, `invalid platform "linux/arm64/v8/extra"`},
		{"bad level", []string{"-o", oci + ",compression-level=99", l1}, "compression level 99 out of range for gzip"},
		{"unknown output type", []string{"-o", "type=tar,dest=" + dest, l1}, `unknown output type "tar"`},
		{"no output", []string{l1}, "no output"},
		{"broken spec", []string{"-f", p("broken.yaml"), "-o", oci}, "spec " + p("broken.yaml") + ": yaml:"},
		{"spec field typo", []string{"-f", p("typo.yaml"), "-o", oci}, "field layer not found (a platform has: platform, layers, config, base)"},
		{"config garbage", []string{"--config", p("garbage.json"), "-o", oci, l1}, "is not an image config JSON object"},
		{"surplus history", []string{"--config", p("surplus.json"), "-o", oci, l1, l2}, "config history has 3 non-empty entries but the image has 2 layers"},
		{"unknown base", []string{"--base", "nope:1", "-o", oci, l1}, "not found"},
		{"unknown flag", []string{"--bogus", l1}, "flag provided but not defined: -bogus"},
		{"env without =", []string{"--env", "A B", "-o", oci, l1}, `--env: change "ENV \"A B\"": "A B": use KEY=VALUE`},
		{"label without key", []string{"--label", "=v", "-o", oci, l1}, `"=v": use KEY=VALUE`},
		{"bad port", []string{"--expose", "http", "-o", oci, l1}, `--expose: change "EXPOSE http": port "http"`},
		{"bad exec form", []string{"--cmd", `["/app"`, "-o", oci, l1}, `--cmd: ["/app" is not a JSON array of strings`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			c.fail(tc.want, append([]string{"export", "--progress", "quiet"}, tc.args...)...)
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("left %s in the destination directory", entries[0].Name())
			}
			if names := c.images(); len(names) != 0 {
				t.Errorf("left images %v", names)
			}
		})
	}
	c.t = t
	c.fail("not found", "save", "nope:1", "-o", oci)
	c.fail("compression only applies to lade export", "save", "nope:1", "-o", oci+",compression=zstd")
	c.fail(`--progress: parse progress mode "bogus"`, "--progress", "bogus", "images")
	if entries, _ := os.ReadDir(in); !slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Name() == "regular" }) || len(entries) != 7 {
		t.Errorf("the input directory changed: %v", entries)
	}
	c.checkClean()
}
