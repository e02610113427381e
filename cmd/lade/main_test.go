package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ladeBin is the lade binary built once by TestMain.
var ladeBin string

// TestMain builds the lade binary the end-to-end tests run.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lade-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ladeBin = filepath.Join(dir, "lade")
	build := exec.Command("go", "build", "-o", ladeBin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runner runs the lade binary against one store.
type runner struct {
	t    *testing.T
	root string
	// env is added to the environment of every run.
	env []string
}

// newCLI returns a runner over a fresh store in a temp dir.
func newRunner(t *testing.T) *runner {
	return &runner{t: t, root: filepath.Join(t.TempDir(), "store")}
}

// result is the outcome of one lade run.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

// String describes the run for failure messages.
func (r result) String() string {
	return fmt.Sprintf("lade %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// run runs lade --root ROOT args... and returns what happened. The
// environment is the test's without variables that would change lade's
// behaviour (store, epoch, docker config), plus c.env.
func (c *runner) run(args ...string) result {
	c.t.Helper()
	full := append([]string{"--root", c.root}, args...)
	cmd := exec.Command(ladeBin, full...)
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "LADE_ROOT", "SOURCE_DATE_EPOCH", "DOCKER_CONFIG", "HOME", "XDG_DATA_HOME":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "HOME="+c.t.TempDir())
	cmd.Env = append(cmd.Env, c.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		c.t.Fatalf("run lade: %v", err)
	}
	return r
}

// ok runs lade and fails the test unless it exits 0; it returns stdout.
func (c *runner) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("%s", r)
	}
	return r.stdout
}

// fail runs lade, expecting a non-zero exit with exactly one line on
// stderr containing want.
func (c *runner) fail(want string, args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code == 0 {
		c.t.Fatalf("succeeded, want an error containing %q\n%s", want, r)
	}
	if lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "lade: ") {
		c.t.Errorf("stderr is not one \"lade: \" line\n%s", r)
	}
	if !strings.Contains(r.stderr, want) {
		c.t.Errorf("stderr does not contain %q\n%s", want, r)
	}
	return r
}

// checkClean runs lade check and fails the test unless the store is
// consistent.
func (c *runner) checkClean() {
	c.t.Helper()
	if out := c.ok("check"); !strings.Contains(out, "store is consistent") {
		c.t.Fatalf("lade check: %s", out)
	}
}

// images returns the names in lade images.
func (c *runner) images() []string {
	c.t.Helper()
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(c.ok("images")), "\n")[1:] {
		names = append(names, strings.Fields(line)[0])
	}
	return names
}

// inspect returns lade inspect IMAGE.
func (c *runner) inspect(name string) inspected {
	c.t.Helper()
	var out inspected
	if err := json.Unmarshal([]byte(c.ok("inspect", name)), &out); err != nil {
		c.t.Fatalf("lade inspect %s: %v", name, err)
	}
	return out
}

// readMetadata reads a --metadata-file.
func readMetadata(t *testing.T, path string) []outputResult {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var res []outputResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("metadata %s: %v\n%s", path, err, b)
	}
	return res
}
