#!/usr/bin/env bash
# Side-by-side benchmark of lade-buildkitd against the stock buildkitd
# v0.34.2 (issue #5): builds both daemons and buildctl from the module,
# generates the workload (busybox base, the Go toolchain tree, 256 MiB of
# random bytes, 20,000 small files, an empty RUN), runs cold gzip, zstd,
# uncompressed, two-platform, type=oci tar, warm and RUN-made-layer builds
# (gzip, zstd, uncompressed) on both daemons
# in turn, measures the in-process floors and the lade CLI's memory growth
# and warm re-export, and prints one table. See docs/performance.md.
#
# Needs root (the daemons mount snapshots and run runc) and the tools from
# hack/install-test-deps.sh (runc, docker-registry, busybox-static).
# Arguments go to the program, e.g.:
#   hack/bench.sh                          # the full run (about 20 minutes)
#   hack/bench.sh --scale 0.25 --rounds 1  # a quick one
#   hack/bench.sh --cases gzip,oci --lade-cli=false
#   go run ./hack/bench --help             # every flag
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "bench: run as root" >&2
	exit 1
fi
for tool in runc docker-registry; do
	command -v "$tool" >/dev/null || { echo "bench: $tool not installed: run hack/install-test-deps.sh" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "bench: busybox-static not installed: run hack/install-test-deps.sh" >&2; exit 1; }

exec go run -tags native ./hack/bench "$@"
