package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stream writes a `go test -json` stream of the given events to a file.
func stream(t *testing.T, events ...event) string {
	t.Helper()
	var b strings.Builder
	for _, ev := range events {
		dt, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(dt)
		b.WriteByte('\n')
	}
	b.WriteString("not json: the binary's stderr\n")
	path := filepath.Join(t.TempDir(), "run.json")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func out(test, text string) event { return event{Action: "output", Test: test, Output: text + "\n"} }

func TestReadResults(t *testing.T) {
	const fail = "TestIntegration/TestFoo/worker=oci"
	const skip = "TestIntegration/TestBar/worker=containerd"
	const pass = "TestIntegration/TestBaz/worker=oci"
	path := stream(t,
		out(fail, "=== RUN   "+fail),
		out(fail+"/propagate=1", "    sandbox.go:202: stdout: buildkitd --debug"),
		out(fail+"/propagate=1", "        \tError Trace:\t/mod/client/client_export_image_test.go:307"),
		out(fail+"/propagate=1", "        \t            \t\t\t\t/mod/integration/run.go:105"),
		out(fail+"/propagate=1", "        \tError:      \tReceived unexpected error:"),
		out(fail+"/propagate=1", "        \t            \tunsupported layer media type"),
		out(fail+"/propagate=1", "        \t            \tgithub.com/moby/buildkit/util/stack.Enable"),
		out(fail+"/propagate=1", "        \tTest:       \t"+fail+"/propagate=1"),
		event{Action: "fail", Test: fail + "/propagate=1"},
		event{Action: "fail", Test: fail},
		out(skip, "    client_export_image_test.go:960: only supported with containerd"),
		event{Action: "skip", Test: skip},
		event{Action: "pass", Test: pass},
		out(pass, "--- PASS: "+pass),
		event{Action: "fail", Test: "TestIntegration"},
	)
	got, err := readResults(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]result{
		"TestFoo/worker=oci": {status: "fail", detail: "(propagate=1) client_export_image_test.go:307: " +
			"Received unexpected error: unsupported layer media type"},
		"TestBar/worker=containerd": {status: "skip", detail: "only supported with containerd"},
		"TestBaz/worker=oci":        {status: "pass"},
	}
	checkResults(t, got, want)
}

func TestReportCountsAndRegressions(t *testing.T) {
	rows := expandRows([][2]string{{"a_test.go", "TestFoo"}, {"a_test.go", "TestBar"}, {"a_test.go", "TestQux"}}, []string{"oci"})
	daemons := []daemon{
		{name: "stock", results: map[string]result{
			"TestFoo/worker=oci": {status: "pass"}, "TestBar/worker=oci": {status: "fail", detail: "offline"},
			"TestQux/worker=oci": {status: "pass"},
		}},
		{name: "lade", results: map[string]result{
			"TestFoo/worker=oci": {status: "fail", detail: "x | y"}, "TestBar/worker=oci": {status: "fail"},
			"TestQux/worker=oci": {status: "fail", detail: "3 layers, want 2"},
		}},
		{name: "lade --stock-compat", results: map[string]result{
			"TestFoo/worker=oci": {status: "fail", detail: "x"}, "TestBar/worker=oci": {status: "fail"},
			"TestQux/worker=oci": {status: "pass"},
		}},
	}
	var b strings.Builder
	writeReport(&b, "t", "oci", rows, daemons, map[string]string{"TestBar": "needs the internet"})
	for _, want := range []string{
		"| stock | 3 | 2 | 1 | 0 |",
		"| lade | 3 | 0 | 3 | 0 |",
		"| stock and lade | 3 | 0 | | |",
		"| stock and lade --stock-compat | 3 | 1 | | |",
		"| test | stock | lade | lade --stock-compat | first error (lade's; else stock's) | why stock fails offline |",
		`| TestFoo | pass | **FAIL** | **FAIL** | x \| y |  |`,
		"| TestBar | **FAIL** | **FAIL** | **FAIL** |  | needs the internet |",
		"Passing on stock, not on lade, not even with --stock-compat: 1",
		"- TestFoo (**FAIL**): x | y — with --stock-compat: **FAIL**",
		"intended differences: empty layers dropped, its own gzip bytes, OCI tars started early): 1",
		"- TestQux (**FAIL**): 3 layers, want 2",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
	daemons[1].results = nil
	if err := allPassed(rows, daemons[:2]); err == nil || !strings.Contains(err.Error(), "TestBar on stock") {
		t.Errorf("allPassed = %v, want TestBar on stock named", err)
	}
}

func TestExpandRowsWorkerOnly(t *testing.T) {
	rows := expandRows([][2]string{{"a.go", "TestFoo"}, {"a.go", "TestBar\tcontainerd"}}, []string{"oci", "containerd"})
	var got []string
	for _, r := range rows {
		got = append(got, r.key+"="+r.label)
	}
	want := "TestFoo/worker=oci=TestFoo (oci) TestFoo/worker=containerd=TestFoo (containerd) " +
		"TestBar/worker=containerd=TestBar (containerd)"
	if strings.Join(got, " ") != want {
		t.Errorf("rows = %q, want %q", strings.Join(got, " "), want)
	}
}

// TestMatrixAndGatewayTests checks that a matrix test's variants
// (TestIntegration/TestX/worker=oci/netmode=host) are tests of their own and
// that TestClientGatewayIntegration's tests are read as TestIntegration's.
func TestMatrixAndGatewayTests(t *testing.T) {
	const host = "TestIntegration/TestHostNetworking/worker=oci/netmode=host"
	const dflt = "TestIntegration/TestHostNetworking/worker=oci/netmode=default"
	const gw = "TestClientGatewayIntegration/TestClientGatewaySolve/worker=oci"
	path := stream(t,
		event{Action: "run", Test: host},
		event{Action: "run", Test: dflt},
		event{Action: "run", Test: gw},
		out(host+"/sub", "        \tError:      \tnetwork unreachable"),
		event{Action: "fail", Test: host + "/sub"},
		event{Action: "fail", Test: host},
		event{Action: "pass", Test: dflt},
		event{Action: "pass", Test: gw},
		event{Action: "run", Test: "TestOther/worker=oci"},
	)
	got, err := readResults(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]result{
		"TestHostNetworking/worker=oci/netmode=host":    {status: "fail", detail: "(sub) network unreachable"},
		"TestHostNetworking/worker=oci/netmode=default": {status: "pass"},
		"TestClientGatewaySolve/worker=oci":             {status: "pass"},
	}
	checkResults(t, got, want)
	rows := matrixRows(expandRows([][2]string{{"n_test.go", "TestHostNetworking"}, {"n_test.go", "TestUnused"}}, []string{"oci"}),
		[]daemon{{name: "stock", results: got}}, true)
	var labels []string
	for _, r := range rows {
		labels = append(labels, r.label+"="+r.key)
	}
	wantLabels := "TestHostNetworking netmode=default=TestHostNetworking/worker=oci/netmode=default," +
		"TestHostNetworking netmode=host=TestHostNetworking/worker=oci/netmode=host"
	if strings.Join(labels, ",") != wantLabels {
		t.Errorf("rows %q, want %q", strings.Join(labels, ","), wantLabels)
	}
}

// checkResults compares the results read with those wanted, key by key.
func checkResults(t *testing.T, got, want map[string]result) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d results, want %d: %v", len(got), len(want), got)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %+v, want %+v", k, got[k], w)
		}
	}
}
