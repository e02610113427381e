#!/usr/bin/env bash
# Runs lade-buildkitd's integration tests (frontend-test/): real Dockerfile
# builds through lade-buildkitd and the stock buildkitd v0.34.2, driven by
# the stock buildctl, checked with skopeo, umoci and runc.
#
# Needs root (the daemons mount snapshots and run runc) and the tools from
# hack/install-test-deps.sh: runc, skopeo, umoci, docker-registry and
# busybox-static. Also runs buildkit/'s integration tests (lade's differ
# against BuildKit's on real overlay mounts). Extra arguments go to
# `go test` (e.g. -run TestPush -v).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "frontend-test: run as root" >&2
	exit 1
fi
for tool in runc skopeo umoci docker-registry; do
	command -v "$tool" >/dev/null || { echo "frontend-test: $tool not installed: run hack/install-test-deps.sh" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "frontend-test: busybox-static not installed: run hack/install-test-deps.sh" >&2; exit 1; }

exec go test -tags integration -count=1 -timeout 40m "$@" ./frontend-test/... ./buildkit/...
