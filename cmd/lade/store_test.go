package main

import (
	"bufio"
	"encoding/json"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRemoveAndPrune removes images one at a time: prune frees what only
// the removed image used, keeps the rest usable, and the store stays
// consistent; with no image left the store holds no blob.
func TestRemoveAndPrune(t *testing.T) {
	fx := newFixture(t)
	c := newRunner(t)
	other := filepath.Join(fx.dir, "other")
	writeFile(t, filepath.Join(other, "etc/other"), "another image\n", 0o644)
	c.ok("export", "--progress", "quiet", "-f", fx.spec, "-o", "type=image,name=app:1")
	c.ok("export", "--progress", "quiet", "--platform", "linux/amd64", "-o", "type=image,name=other:1", other)
	if names := c.images(); !slices.Equal(names, []string{"docker.io/library/app:1", "docker.io/library/other:1"}) {
		t.Fatalf("lade images: %v", names)
	}
	c.checkClean()
	full := storeBlobs(t, c.root)

	c.ok("rm", "app:1")
	if out := c.ok("prune"); !strings.HasPrefix(out, "removed ") {
		t.Errorf("lade prune: %q", out)
	}
	some := storeBlobs(t, c.root)
	if some.count >= full.count || some.bytes >= full.bytes {
		t.Errorf("prune after rm app:1: %+v blobs, before %+v", some, full)
	}
	c.checkClean()
	dest := filepath.Join(t.TempDir(), "other.tar")
	c.ok("save", "--progress", "quiet", "other:1", "-o", "type=oci,dest="+dest)

	c.ok("rm", "other:1")
	c.ok("prune")
	if left := storeBlobs(t, c.root); left.count != 0 {
		t.Errorf("no image left, yet %+v blobs stay", left)
	}
	if names := c.images(); len(names) != 0 {
		t.Errorf("lade images after rm: %v", names)
	}
	c.checkClean()
	c.fail("not found", "rm", "app:1")
}

// blobStats counts the blob files of a store.
type blobStats struct {
	count int
	bytes int64
}

// storeBlobs counts the blob files under a store's content directory.
func storeBlobs(t *testing.T, root string) blobStats {
	t.Helper()
	var st blobStats
	err := filepath.WalkDir(filepath.Join(root, "content", "blobs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		st.count++
		st.bytes += fi.Size()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestHelpAndProgress checks that export --help documents the output
// types and that --progress rawjson, before or after the command name,
// prints JSON lines.
func TestHelpAndProgress(t *testing.T) {
	fx := newFixture(t)
	c := newRunner(t)
	help := c.ok("export", "--help")
	for _, want := range []string{"type=image,name=", "type=oci,dest=", "tar=false", "type=docker,dest=", "--metadata-file", "--base"} {
		if !strings.Contains(help, want) {
			t.Errorf("lade export --help does not mention %q", want)
		}
	}
	for _, args := range [][]string{
		{"--progress", "rawjson", "export", "-o", "type=image,name=a:1", fx.layers[0]},
		{"export", "--progress", "rawjson", "-o", "type=image,name=b:1", fx.layers[0]},
	} {
		r := c.run(args...)
		if r.code != 0 {
			t.Fatalf("%s", r)
		}
		checkJSONLines(t, r)
	}
}

// checkJSONLines checks that stderr is progress events, one JSON object
// per line, and that some vertex completed.
func checkJSONLines(t *testing.T, r result) {
	t.Helper()
	lines, completed := 0, 0
	sc := bufio.NewScanner(strings.NewReader(r.stderr))
	for sc.Scan() {
		var e struct {
			ID        string `json:"id"`
			Completed string `json:"completed"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.ID == "" {
			t.Fatalf("line %q is not a progress event (%v)\n%s", sc.Text(), err, r)
		}
		lines++
		if e.Completed != "" {
			completed++
		}
	}
	if lines == 0 || completed == 0 {
		t.Errorf("%d events, %d completed\n%s", lines, completed, r)
	}
}
