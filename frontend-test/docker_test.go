//go:build integration

package frontendtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lade-build/lade/internal/testutil"
)

// TestUnderDocker runs lade-buildkitd the way buildkitd images are run: in
// a privileged Docker container, driven by the stock buildctl on the host
// through a socket in a bind-mounted directory. The image is made by lade
// itself (no base to pull): a static lade-buildkitd and buildctl, Debian's
// runc with its libraries, busybox, exported with `lade export -o
// type=docker` and loaded with `docker load` into a private dockerd.
//
// The containers run with --network none (nothing to pull from here): the
// type=oci and type=docker outputs stream to the client over the session.
// With the image's /var/lib/buildkit volume the default snapshotter picks
// overlayfs; with the state on the container's own overlay2 file system it
// falls back to native. Both build the main Dockerfile, checked like the
// other tests (oracle, skopeo, umoci and runc, the empty RUN layer
// dropped), and a misspelled attribute fails with lade's error. buildx's
// docker-container driver runs the same image and builds through it, to
// an OCI tarball and with --load into the engine, where the image runs.
func TestUnderDocker(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("integration tests run as root")
	}
	testutil.RequireTool(t, "dockerd", "docker", "runc", "ldd", "skopeo", "umoci")
	start := time.Now()
	dk := startDockerd(t)
	static := buildStaticBins(t)
	binDir(t) // the host's stock buildctl
	t.Logf("dockerd and binaries ready in %s", time.Since(start).Round(time.Second))

	image := "lade-buildkitd:test"
	dk.loadImage(t, static, image)

	ctxDir := contextDir(t, mainDockerfile, nil)

	t.Run("volume", func(t *testing.T) {
		// As documented: the image's VOLUME /var/lib/buildkit holds the
		// state, so overlayfs works.
		d := dk.runDaemon(t, "lbk-volume", image, "--addr", "unix:///run/buildkit/buildkitd.sock")
		d.wantSnapshotter(t, "overlayfs")
		d.checkOutputs(t, ctxDir)

		// The misspelled attribute fails with lade's error through the
		// container, for both exporters.
		out, err := d.build(t, ctxDir, "--output", "type=oci,dest="+filepath.Join(t.TempDir(), "x.tar")+",compresion=zstd")
		if err == nil {
			t.Fatalf("build with compresion=zstd succeeded:\n%s", out)
		}
		mustContain(t, "buildctl error", out, `unknown attribute "compresion": did you mean "compression"?`)
		out, err = d.build(t, ctxDir, "--output", "type=image,name=lade/x:v1,psh=true")
		if err == nil {
			t.Fatalf("build with psh=true succeeded:\n%s", out)
		}
		mustContain(t, "buildctl error", out, `image exporter: unknown attribute "psh": did you mean "push"?`)

		// buildctl's docker-container:// address (docker exec buildctl
		// dial-stdio in the container) reaches the same daemon.
		cmd := exec.Command(filepath.Join(bins.dir, "buildctl"), "--addr", "docker-container://lbk-volume", "debug", "workers", "-v")
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+dk.Sock)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("buildctl --addr docker-container://: %v\n%s", err, b)
		}
		mustContain(t, "buildctl debug workers through docker exec", string(b), "org.mobyproject.buildkit.worker.snapshotter:")
	})

	t.Run("buildx-docker-container", func(t *testing.T) {
		// buildx's docker-container driver runs the image itself (as it
		// runs moby/buildkit) and reaches it with docker exec buildctl
		// dial-stdio.
		testutil.RequireTool(t, "buildx")
		buildx := buildxRunner(t, "DOCKER_HOST=unix://"+dk.Sock)
		buildx("create", "--name", "lade-dc", "--driver", "docker-container",
			"--driver-opt", "image="+image, "--driver-opt", "network=none")
		t.Cleanup(func() {
			const container = "buildx_buildkit_lade-dc0" // buildx's name for the node
			if t.Failed() {
				out, _ := dk.Docker("logs", "--tail", "60", container)
				t.Logf("%s log:\n%s", container, out)
			}
			_, _ = dk.Docker("rm", "-f", "-v", container)
		})
		checkBuildxInspect(t, buildx("inspect", "--bootstrap", "lade-dc"))
		ociTar := filepath.Join(t.TempDir(), "x.tar")
		out := buildx("--builder", "lade-dc", "build", "--progress", "plain", "--provenance=false",
			"--output", "type=oci,dest="+ociTar+",name=lade/buildx-dc:v1", ctxDir)
		mustContain(t, "buildx build", out, "exporting to oci image format", "exporting with lade", "dropping empty layer")
		checkMainImage(t, extract(t, ociTar), "v1")

		// --load: buildx streams lade's type=docker output into the
		// engine's image load, and the image runs there.
		tag := "lade/buildx-load:v1"
		out = buildx("--builder", "lade-dc", "build", "--progress", "plain", "--load", "-t", tag, ctxDir)
		mustContain(t, "buildx build --load", out, "exporting to docker image format", "exporting with lade")
		dk.runMainImage(t, tag)
		dk.MustDocker(t, "rmi", tag)
	})

	t.Run("container-fs", func(t *testing.T) {
		// State on the container's overlay2 file system: overlayfs cannot
		// be stacked there and auto falls back to the native snapshotter.
		d := dk.runDaemon(t, "lbk-native", image, "--root", "/var/lib/lade-buildkitd")
		d.wantSnapshotter(t, "native")
		d.checkOutputs(t, ctxDir)
	})
	t.Logf("TestUnderDocker took %s", time.Since(start).Round(time.Second))
}

// dockerd is a private docker daemon (testutil.StartDockerd) that can run
// --privileged containers here.
type dockerd struct{ *testutil.Dockerd }

// startDockerd starts the daemon. When this process's capability bounding
// set lacks capabilities (some sandboxes drop CAP_SYS_RESOURCE),
// --privileged containers cannot start (docker asks runc for every
// capability); the daemon then runs runc through a wrapper that drops
// those capabilities.
func startDockerd(t *testing.T) *dockerd {
	t.Helper()
	return &dockerd{testutil.StartDockerd(t, func(dir string) []string {
		missing := missingCaps()
		if len(missing) == 0 {
			return nil
		}
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		wrapper := filepath.Join(dir, runcWrapperName)
		if err := os.Symlink(self, wrapper); err != nil {
			t.Fatal(err)
		}
		t.Logf("capabilities %v are not in the bounding set: runc runs through a wrapper dropping them", missing)
		return []string{"--add-runtime", "lade-test-runc=" + wrapper, "--default-runtime", "lade-test-runc"}
	})}
}

// staticBins holds the binaries the image and its export need.
type staticBins struct {
	dir string // static lade-buildkitd and buildctl (CGO_ENABLED=0), lade
}

// buildStaticBins builds a static lade-buildkitd and buildctl for the
// image (as the top-level Dockerfile does) and the lade CLI.
func buildStaticBins(t *testing.T) staticBins {
	t.Helper()
	dir := t.TempDir()
	static := exec.Command("go", "build", "-o", dir+"/",
		"github.com/lade-build/lade/cmd/lade-buildkitd", "github.com/moby/buildkit/cmd/buildctl")
	static.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := static.CombinedOutput(); err != nil {
		t.Fatalf("go build (static): %v\n%s", err, out)
	}
	if out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/lade-build/lade/cmd/lade").CombinedOutput(); err != nil {
		t.Fatalf("go build lade: %v\n%s", err, out)
	}
	return staticBins{dir: dir}
}

// loadImage assembles the lade-buildkitd image's root file system, exports
// it with lade as a docker archive, checks the archive with the oracle and
// loads it with docker load.
func (dk *dockerd) loadImage(t *testing.T, bins staticBins, name string) {
	t.Helper()
	tmp := t.TempDir()
	rootfs := filepath.Join(tmp, "rootfs")
	for _, d := range []string{"usr/bin", "usr/sbin", "bin", "etc", "root", "var/lib/buildkit", "run/buildkit"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(rootfs, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	rootfsCopy(t, filepath.Join(bins.dir, "lade-buildkitd"), filepath.Join(rootfs, "usr/bin/lade-buildkitd"))
	rootfsCopy(t, filepath.Join(bins.dir, "buildctl"), filepath.Join(rootfs, "usr/bin/buildctl"))
	rootfsSymlink(t, "lade-buildkitd", filepath.Join(rootfs, "usr/bin/buildkitd"))
	// Debian's runc is dynamically linked: its libraries and the loader
	// go to the same paths in the image.
	runcPath, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal(err)
	}
	if runcPath, err = filepath.EvalSymlinks(runcPath); err != nil {
		t.Fatal(err)
	}
	rootfsCopy(t, runcPath, filepath.Join(rootfs, "usr/sbin/runc"))
	for _, lib := range sharedLibs(t, runcPath) {
		rootfsCopy(t, lib, filepath.Join(rootfs, lib))
	}
	rootfsCopy(t, busyboxPath, filepath.Join(rootfs, "bin/busybox"))
	rootfsSymlink(t, "busybox", filepath.Join(rootfs, "bin/sh"))
	rootfsWrite(t, filepath.Join(rootfs, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
	rootfsWrite(t, filepath.Join(rootfs, "etc/group"), "root:x:0:\n")

	// The top-level Dockerfile's image config: PATH, the state volume and
	// lade-buildkitd as entrypoint.
	cfg := filepath.Join(tmp, "config.json")
	rootfsWrite(t, cfg, `{"architecture":"amd64","os":"linux","config":{`+
		`"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],`+
		`"Volumes":{"/var/lib/buildkit":{}}},"rootfs":{"type":"layers","diff_ids":[]}}`)
	archive := filepath.Join(tmp, "lade-buildkitd.tar")
	testutil.Run(t, filepath.Join(bins.dir, "lade"), "--root", filepath.Join(tmp, "store"),
		"export", "--progress", "plain", "--platform", "linux/amd64", "--config", cfg,
		"--entrypoint", `["/usr/bin/lade-buildkitd"]`,
		"-o", "type=docker,dest="+archive+",name="+name, rootfs)
	openLayoutDir(t, extract(t, archive)).verify(t)
	mustContain(t, "docker load", dk.MustDocker(t, "load", "-i", archive), "Loaded image: "+name)
	got := dk.MustDocker(t, "image", "inspect", "--format", "{{json .Config.Entrypoint}} {{json .Config.Volumes}}", name)
	mustContain(t, "docker image inspect", got, `["/usr/bin/lade-buildkitd"] {"/var/lib/buildkit":{}}`)
}

// sharedLibs returns the libraries and the loader ldd lists for bin, none
// for a static binary.
func sharedLibs(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("not a dynamic executable")) {
			return nil
		}
		t.Fatalf("ldd %s: %v\n%s", bin, err, out)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
		// "/lib64/ld-linux-x86-64.so.2 (0x...)"; vdso has no path.
		for _, f := range strings.Fields(sc.Text()) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
				break
			}
		}
	}
	if len(libs) == 0 {
		t.Fatalf("ldd %s lists no library:\n%s", bin, out)
	}
	return libs
}

// containerDaemon is lade-buildkitd running in a container, reached
// through the socket in a bind-mounted host directory.
type containerDaemon struct {
	*daemon
	dk   *dockerd
	name string
}

// runDaemon starts image as container name, privileged and without
// network, with the host directory DIR/name bind-mounted at /run/buildkit
// and args after the image, and waits until the stock buildctl on the host
// answers through DIR/name/buildkitd.sock.
func (dk *dockerd) runDaemon(t *testing.T, name, image string, args ...string) *containerDaemon {
	t.Helper()
	hostDir := filepath.Join(dk.Dir, name)
	if err := os.Mkdir(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := append([]string{"run", "-d", "--name", name, "--privileged", "--network", "none",
		"-v", hostDir + ":/run/buildkit", image}, args...)
	dk.MustDocker(t, run...)
	d := &containerDaemon{
		daemon: &daemon{kind: "lade-buildkitd in docker (" + name + ")", addr: "unix://" + filepath.Join(hostDir, "buildkitd.sock")},
		dk:     dk, name: name,
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := dk.Docker("logs", "--tail", "60", name)
			t.Logf("%s log:\n%s", name, out)
		}
		_, _ = dk.Docker("rm", "-f", "-v", name)
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := d.buildctl(ctx, "debug", "workers")
		cancel()
		if err == nil {
			return d
		}
		if state, _ := dk.Docker("inspect", "--format", "{{.State.Status}}", name); strings.TrimSpace(state) == "exited" || time.Now().After(deadline) {
			logs, _ := dk.Docker("logs", name)
			t.Fatalf("%s did not answer (%s): %v\n%s\n%s", name, strings.TrimSpace(state), err, out, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var snapshotterLabel = regexp.MustCompile(`org\.mobyproject\.buildkit\.worker\.snapshotter:\s+(\S+)`)

// wantSnapshotter checks the snapshotter the worker reports.
func (d *containerDaemon) wantSnapshotter(t *testing.T, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := d.buildctl(ctx, "debug", "workers", "-v")
	if err != nil {
		t.Fatalf("buildctl debug workers: %v\n%s", err, out)
	}
	m := snapshotterLabel.FindStringSubmatch(out)
	if m == nil || m[1] != want {
		t.Fatalf("snapshotter: want %s, workers:\n%s", want, out)
	}
}

// checkOutputs builds mainDockerfile with type=oci and type=docker outputs
// through the container and checks them: the layout oracle, skopeo, umoci
// and runc, the empty RUN layer dropped; the docker archive is also loaded
// into the private dockerd and run.
func (d *containerDaemon) checkOutputs(t *testing.T, ctxDir string) {
	t.Helper()
	tmp := t.TempDir()
	ociTar := filepath.Join(tmp, "x.tar")
	out := d.mustBuild(t, ctxDir, "--output", "type=oci,dest="+ociTar+",name=lade/x:v1")
	mustContain(t, "progress", out, "exporting to oci image format", "exporting with lade", "dropping empty layer")
	mustContain(t, "skopeo oci-archive", skopeo(t, "inspect", "oci-archive:"+ociTar), `"org.example.test": "lade"`)
	checkMainImage(t, extract(t, ociTar), "v1")

	tag := "lade/" + d.name + ":v1"
	dockerTar := filepath.Join(tmp, "d.tar")
	d.mustBuild(t, ctxDir, "--output", "type=docker,dest="+dockerTar+",name="+tag)
	mustContain(t, "skopeo docker-archive", skopeo(t, "inspect", "docker-archive:"+dockerTar), `"org.example.test": "lade"`)
	ex := extract(t, dockerTar)
	var entries []struct {
		RepoTags, Layers []string
	}
	b, err := os.ReadFile(filepath.Join(ex, "manifest.json"))
	if err != nil || json.Unmarshal(b, &entries) != nil || len(entries) != 1 {
		t.Fatalf("manifest.json: %v %s", err, b)
	}
	if len(entries[0].Layers) != mainLayers || entries[0].RepoTags[0] != tag {
		t.Fatalf("manifest.json entry %+v, want %d layers tagged %s", entries[0], mainLayers, tag)
	}
	openLayoutDir(t, ex).verify(t)
	mustContain(t, "docker load", d.dk.MustDocker(t, "load", "-i", dockerTar), "Loaded image: "+tag)
	d.dk.runMainImage(t, tag)
}

// runMainImage runs the image of mainDockerfile tagged tag in the engine
// and checks what it sees: files, the whiteout, ENV.
func (dk *dockerd) runMainImage(t *testing.T, tag string) {
	t.Helper()
	got := dk.MustDocker(t, "run", "--rm", "--network", "none", tag, "/bin/sh", "-c",
		`cat /etc/app/hello.txt; test -e /etc/app/bye.txt || echo whiteout-ok; cat /done.txt; echo "$GREETING"`)
	mustContain(t, "docker run of "+tag, got, "hello\n", "whiteout-ok\n", "done\n", "hi-from-lade\n")
}

func rootfsCopy(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func rootfsSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func rootfsWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runcWrapperName is the name the test binary answers to as a runc
// wrapper (a symlink to it is the private dockerd's runtime).
const runcWrapperName = "lade-test-runc"

func init() {
	if filepath.Base(os.Args[0]) == runcWrapperName {
		os.Exit(runcWrapper(os.Args[1:]))
	}
}

// runcWrapper drops the capabilities missing from the bounding set from
// the container's config.json (runc create --bundle DIR) or the process of
// runc exec (--process FILE), then runs runc with the same arguments.
func runcWrapper(args []string) int {
	drop := map[string]bool{}
	for _, c := range missingCaps() {
		drop[c] = true
	}
	for i, a := range args {
		var file string
		var keys []string
		switch {
		case (a == "--bundle" || a == "-b") && i+1 < len(args):
			file, keys = filepath.Join(args[i+1], "config.json"), []string{"process", "capabilities"}
		case strings.HasPrefix(a, "--bundle="):
			file, keys = filepath.Join(strings.TrimPrefix(a, "--bundle="), "config.json"), []string{"process", "capabilities"}
		case (a == "--process" || a == "-p") && i+1 < len(args):
			file, keys = args[i+1], []string{"capabilities"}
		case strings.HasPrefix(a, "--process="):
			file, keys = strings.TrimPrefix(a, "--process="), []string{"capabilities"}
		default:
			continue
		}
		if err := dropCapsIn(file, keys, drop); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", runcWrapperName, err)
			return 1
		}
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", runcWrapperName, err)
		return 1
	}
	err = syscall.Exec(runc, append([]string{"runc"}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "%s: exec runc: %v\n", runcWrapperName, err)
	return 1
}

// dropCapsIn removes the capabilities in drop from every set of the
// object at keys in the JSON file, keeping numbers as they are.
func dropCapsIn(file string, keys []string, drop map[string]bool) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	obj := doc
	for _, k := range keys {
		if obj, _ = obj[k].(map[string]any); obj == nil {
			return nil
		}
	}
	for set, v := range obj {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		kept := []any{}
		for _, c := range list {
			if s, _ := c.(string); !drop[s] {
				kept = append(kept, c)
			}
		}
		obj[set] = kept
	}
	if b, err = json.Marshal(doc); err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// capNames are the capabilities by number.
var capNames = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE"}

// missingCaps returns the capabilities the kernel knows that are not in
// this process's bounding set.
func missingCaps() []string {
	last := len(capNames) - 1
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n < last {
			last = n
		}
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	var bnd uint64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			if bnd, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil {
				return nil
			}
		}
	}
	var missing []string
	for i := 0; i <= last; i++ {
		if bnd&(1<<i) == 0 {
			missing = append(missing, capNames[i])
		}
	}
	return missing
}
