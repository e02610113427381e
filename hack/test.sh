#!/usr/bin/env bash
# lade's test command: installs what the tests need, checks formatting and
# vet, runs every test (unit and end-to-end with the real tools), the
# concurrent packages again under the race detector, then lade-buildkitd's
# frontend tests (root), then each fuzz target briefly.
# Usage: hack/test.sh [go test args...]
set -euo pipefail
cd "$(dirname "$0")/.."

bash hack/install-test-deps.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
echo "== go vet"
go vet ./...

echo "== go test"
go test -count=1 "$@" ./...

echo "== go test -race (the packages that share writers across goroutines)"
go test -count=1 -race ./internal/writeback/ ./blobs/internal/pargzip/ ./cache/

echo "== frontend tests (lade-buildkitd and stock buildkitd, driven by buildctl)"
bash hack/frontend-test.sh

echo "== fuzz (brief)"
for target in $(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do
	pkg=$(dirname "$target")
	for f in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$target" | sed 's/^func //'); do
		echo "fuzz $pkg $f"
		go test -run '^$' -fuzz "^$f\$" -fuzztime "${LADE_FUZZTIME:-5s}" "$pkg" >/dev/null
	done
done
echo "== all tests passed"
