#!/usr/bin/env bash
# Library benchmark: lade's one-pass layer pipeline per compression against
# baselines measured in the same run on the same tree: Go's compress/gzip
# (stock BuildKit's compressor), GNU tar, tar | pigz -p 2.
# Usage: hack/bench-blobs.sh [MiB] [count]   (defaults: 512, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
mb=${1:-512}
count=${2:-3}
out=$(mktemp)
LADE_BENCH_MB=$mb go test -run '^$' -bench 'ExportDir|Baseline' -benchtime 1x -count "$count" ./blobs/ | tee "$out" | grep -E '^Benchmark'
echo
echo "MB/s, median of $count (min-max), and speed-up over Go's compress/gzip:"
awk '
/^Benchmark/ {
	name=$1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
	for (i=1; i<=NF; i++) if ($(i+1)=="MB/s") v[name]=v[name] " " $i
}
END {
	for (n in v) {
		k=split(substr(v[n],2), a, " ")
		for (i=2; i<=k; i++) { x=a[i]+0; j=i-1; while (j>0 && a[j]+0>x) { a[j+1]=a[j]; j-- } a[j+1]=x }
		med[n]=a[int((k+1)/2)]; lo[n]=a[1]; hi[n]=a[k]
	}
	base=med["BaselineStdlibGzip"]
	for (n in med) printf "%-28s %8.1f (%.1f-%.1f)  x%.2f\n", n, med[n], lo[n], hi[n], med[n]/base
}' "$out" | sort
rm -f "$out"
