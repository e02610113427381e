package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/exportertest"
	"github.com/lade-build/lade/imagestore"
)

// ladeBin is the lade binary built once by TestMain.
var ladeBin string

// TestMain builds ./cmd/lade into a temp dir; every CLI test runs it.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lade-reliability-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ladeBin = filepath.Join(dir, "lade")
	build := exec.Command("go", "build", "-o", ladeBin, "github.com/lade-build/lade/cmd/lade")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/lade: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs the lade binary on one store root.
type cli struct {
	t    testing.TB
	root string
}

// newCLI returns a runner on root (created by lade on first use).
func newCLI(t testing.TB, root string) *cli { return &cli{t: t, root: root} }

// result is the outcome of one lade run.
type result struct {
	args           []string
	stdout, stderr string
	code           int
	// maxRSS is the process's peak resident memory in bytes.
	maxRSS int64
}

// String describes the run for failure messages.
func (r result) String() string {
	return fmt.Sprintf("lade %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// command returns the exec.Cmd of lade --root ROOT args..., with an
// environment free of variables that change lade's behaviour.
func (c *cli) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, ladeBin, append([]string{"--root", c.root}, args...)...)
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "LADE_ROOT", "SOURCE_DATE_EPOCH", "DOCKER_CONFIG", "XDG_DATA_HOME":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	return cmd
}

// run runs lade and returns what happened.
func (c *cli) run(args ...string) result {
	c.t.Helper()
	cmd := c.command(context.Background(), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss << 10
		}
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		c.t.Fatalf("run lade: %v", err)
	}
	return r
}

// ok runs lade and fails the test unless it exits 0.
func (c *cli) ok(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("%s", r)
	}
	return r
}

// fail runs lade, expecting a non-zero exit with one "lade: " line on
// stderr containing every one of wants (case-insensitive).
func (c *cli) fail(wants []string, args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code == 0 {
		c.t.Fatalf("succeeded, want an error containing %q\n%s", wants, r)
	}
	c.t.Logf("lade %s\n\t%s", args[0], strings.TrimSpace(r.stderr))
	if lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "lade: ") {
		c.t.Errorf("stderr is not one \"lade: \" line\n%s", r)
	}
	for _, w := range wants {
		if !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(w)) {
			c.t.Errorf("stderr does not contain %q\n%s", w, r)
		}
	}
	return r
}

// checkFaults runs lade check and returns the fault lines by kind (the
// first word of each line). The exit code must agree with the lines.
func (c *cli) checkFaults() map[string][]string {
	c.t.Helper()
	r := c.run("check")
	faults := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if line == "" || line == "store is consistent" {
			continue
		}
		kind, _, _ := strings.Cut(line, " ")
		faults[kind] = append(faults[kind], line)
	}
	if (len(faults) == 0) != (r.code == 0) {
		c.t.Fatalf("lade check: exit code disagrees with its report\n%s", r)
	}
	if r.code == 0 && !strings.Contains(r.stdout, "store is consistent") {
		c.t.Fatalf("lade check: no verdict\n%s", r)
	}
	return faults
}

// checkClean fails the test unless lade check finds nothing.
func (c *cli) checkClean() {
	c.t.Helper()
	if f := c.checkFaults(); len(f) != 0 {
		c.t.Fatalf("lade check found faults: %v", f)
	}
}

// images returns the names lade images lists.
func (c *cli) images() []string {
	c.t.Helper()
	var names []string
	lines := strings.Split(strings.TrimSpace(c.ok("images").stdout), "\n")
	for _, line := range lines[1:] {
		names = append(names, strings.Fields(line)[0])
	}
	return names
}

// outputResult is one output's entry in a --metadata-file.
type outputResult struct {
	Output string          `json:"output"`
	Result exporter.Result `json:"result"`
}

// readMetadata reads a --metadata-file.
func readMetadata(t testing.TB, path string) []outputResult {
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

// openStore opens the store at root in this process, closed at the end of
// the test (or earlier by the caller: Close is idempotent).
func openStore(t testing.TB, root string) *imagestore.Store {
	t.Helper()
	s, err := imagestore.Open(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// blobFile is where the store keeps the blob dgst.
func blobFile(root, dgst string) string {
	alg, hex, _ := strings.Cut(dgst, ":")
	return filepath.Join(root, "content", "blobs", alg, hex)
}

// ingestDirs returns the ingest directories of the store at root.
func ingestDirs(root string) map[string]bool {
	out := map[string]bool{}
	ents, _ := os.ReadDir(filepath.Join(root, "content", "ingest"))
	for _, e := range ents {
		out[e.Name()] = true
	}
	return out
}

// verifyImages checks that the store at root holds exactly the images
// names (normalized) and that each passes the output oracle.
func verifyImages(t testing.TB, root string, names []string) {
	t.Helper()
	ctx := context.Background()
	s := openStore(t, root)
	defer s.Close()
	list, err := s.ListImages(ctx)
	must(t, err)
	var got, want []string
	for _, img := range list {
		got = append(got, img.Name)
		if _, err := exportertest.Verify(ctx, s.Content(), img.Target); err != nil {
			t.Errorf("image %s: %v", img.Name, err)
		}
	}
	for _, n := range names {
		full, err := imagestore.NormalizeName(n)
		must(t, err)
		want = append(want, full)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("images in the store:\n%v\nwant:\n%v", got, want)
	}
}
