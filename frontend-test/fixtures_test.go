//go:build integration

package frontendtest

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// busyboxPath is Debian's busybox-static, the base of every test image.
const busyboxPath = "/bin/busybox"

// mainDockerfile exercises RUN steps, a RUN that deletes files (whiteouts),
// ENV and LABEL, and a RUN that changes nothing (an empty layer lade drops).
const mainDockerfile = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc/app && echo hello > /etc/app/hello.txt && echo bye > /etc/app/bye.txt
RUN rm /etc/app/bye.txt
ENV GREETING=hi-from-lade
LABEL org.example.test=lade
RUN true
RUN echo done > /done.txt
`

// mainSteps is the number of build steps of mainDockerfile; mainLayers the
// layers of its image once the empty one is dropped.
const (
	mainSteps  = 6
	mainLayers = 5
)

// multiStageDockerfile builds an artifact in one stage and copies it into
// the final image.
const multiStageDockerfile = `FROM scratch AS build
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo built-in-stage > /artifact.txt"]

FROM scratch
COPY busybox /bin/busybox
COPY --from=build /artifact.txt /artifact.txt
CMD ["/bin/busybox", "cat", "/artifact.txt"]
`

// multiPlatformDockerfile builds two platforms by COPY only (no emulation
// needed).
const multiPlatformDockerfile = `FROM scratch
COPY hello.txt /hello.txt
ARG TARGETARCH
COPY arch-${TARGETARCH}.txt /arch.txt
`

// contextDir writes a build context: the Dockerfile, busybox (when the
// Dockerfile uses it) and extra files.
func contextDir(t *testing.T, dockerfile string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Dockerfile", dockerfile)
	for name, data := range files {
		write(name, data)
	}
	src, err := os.Open(busyboxPath)
	if err != nil {
		t.Fatalf("busybox-static not installed (%v): run hack/install-test-deps.sh", err)
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(dir, "busybox"), os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// multiPlatformContext is the context of multiPlatformDockerfile.
func multiPlatformContext(t *testing.T) string {
	return contextDir(t, multiPlatformDockerfile, map[string]string{
		"hello.txt": "hello\n", "arch-amd64.txt": "amd64\n", "arch-arm64.txt": "arm64\n",
	})
}
