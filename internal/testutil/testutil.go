// Package testutil holds helpers shared by lade's tests: checks that the
// real tools a test drives are installed, a command runner that fails the
// test with the command's output, a real registry (Debian's
// docker-registry behind a counting, fault-injecting reverse proxy) started
// per test, a private docker daemon (StartDockerd), and UnmountUnder for
// what killed daemons leave mounted.
//
// Missing tools fail tests instead of skipping them: a test that silently
// skips proves nothing. hack/install-test-deps.sh installs every tool.
package testutil

import (
	"os/exec"
	"strings"
	"testing"
)

// RequireTool fails the test at once when any of names is not found in
// $PATH, telling the reader how to install the test dependencies.
func RequireTool(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			t.Fatalf("%s not installed: run hack/install-test-deps.sh", name)
		}
	}
}

// Run runs the command name with args and returns its combined stdout and
// stderr. It fails the test, showing the command line and its output, when
// the command cannot start or exits non-zero.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	RequireTool(t, name)
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
