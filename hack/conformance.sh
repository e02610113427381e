#!/usr/bin/env bash
# Runs BuildKit's own client integration tests (package
# github.com/moby/buildkit/client, at the version go.mod pins) against stock
# buildkitd built from this module and against lade-buildkitd, offline, on
# BuildKit's oci and containerd test workers, and prints a side-by-side
# table (test, stock, lade, first error line, why stock cannot pass it
# offline) with the counts.
#
# BuildKit's harness (util/testutil/integration, util/testutil/workers)
# starts `buildkitd` and `registry` from PATH and serves the images the tests
# pull from the mirror dir BUILDKIT_REGISTRY_MIRROR_DIR. So each run gets a
# directory first on PATH where buildkitd is the daemon under test, buildctl
# is stock's and registry is Debian's docker-registry; the mirror is built
# once from Debian's busybox-static (hack/conformance/mirror.sh) and cached.
# BuildKit's S3 tests start a MinIO server and client (silo, mc), which
# Debian does not package: hack/conformance/s3/ has stand-ins serving S3
# with s3rver (npm).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

usage() {
	cat <<'USAGE'
Usage: hack/conformance.sh [--all | --suite | --run REGEX] [--daemon stock|lade|compat|both|all]
                           [--worker oci|containerd|both]

  (no flag)     the CI subset (ci_tests on the oci worker and
                ci_containerd_tests on the containerd worker, in this
                script): tests that pass on both daemons today, a few
                minutes on 2 cores; fails unless every one passes on every
                daemon run.
  --all         every test of client_export_image_test.go,
                client_export_metadata_test.go and client_cache_test.go; writes
                the table to /work/notes/conformance-latest.txt and, when all
                daemons and both workers ran, to docs/conformance.md.
  --suite       the whole suite: every test TestIntegration and
                TestClientGatewayIntegration run (allTests, validation and
                diff-op cases, matrix tests such as secmode/netmode, the
                gateway container tests), its table grouped by file; writes it
                to /work/notes/conformance-suite-latest.txt and, with
                --daemon both or all, to docs/conformance-suite.md
                (docs/conformance-suite-containerd.md with --worker
                containerd). About 7
                minutes per daemon on 2 cores; rerun tests with --run.
  --run REGEX   the tests of BuildKit's client suite (any file) whose name
                matches the extended REGEX, e.g. one test:
                  hack/conformance.sh --run '^TestExportAnnotations$' --daemon lade
                or a few:
                  hack/conformance.sh --run 'TestSourceDateEpoch|TestBuildExportZstd'
  --daemon D    stock, lade, compat (lade-buildkitd with LADE_STOCK_COMPAT=true:
                its stock-identical switches on), both (stock and lade) or
                all three. Default: all with --all, both otherwise.
  --worker W    BuildKit's test worker: oci, containerd (the harness starts
                Debian's containerd for each test) or both. Default: both
                with --all, oci otherwise.
  -h, --help    this text.

Environment:
  LADE_BUILDKITD=PATH       use this lade-buildkitd instead of building ./cmd/lade-buildkitd
  LADE_CONFORMANCE_CACHE    mirror cache (default ${XDG_CACHE_HOME:-~/.cache}/lade-conformance)
  LADE_CONFORMANCE_PARALLEL sandboxes at a time (default 2; the harness runs
                            GOMAXPROCS daemons at once)
  LADE_CONFORMANCE_MIRROR_PORT  the mirror registry's fixed port (default 47531)

Each daemon's full test log (go test -json) stays in the run's directory,
printed at the end; a failing test's log there has the daemon's own output.
Runs take a lock: a second run waits for the first (they share the mirror port).
USAGE
}

# The CI subset: tests that pass on stock and on lade-buildkitd on the oci
# worker: every one of --all's files that does (52 of 63 on 2026-12-06),
# then a few seconds each of the rest of the suite (--suite) that test
# lade-buildkitd's own wiring. Add a test here once --all or --suite shows
# it passing on both, keeping the subset to a few minutes per daemon. A
# skipped test does not count as passing, so none is listed.
ci_tests=(
	# client_cache_test.go
	TestBasicAzblobCacheImportExport # needs azurite (hack/install-test-deps.sh)
	TestBasicInlineCacheImportExport
	TestBasicLocalCacheImportExport
	TestBasicRegistryCacheImportExport
	TestBasicS3CacheImportExport # silo/mc stand-ins on s3rver
	TestCacheExportCacheDeletedContent
	TestCacheExportCacheKeyLoop
	TestCacheExportIgnoreError
	TestImageManifestRegistryCacheImportExport
	TestLocalCacheExportReset
	TestMultipleCacheExports
	TestMultipleRecordsWithSameLayersCacheImportExport
	TestRemoteCacheSharedMergeBranches
	TestMultipleRegistryCacheImportExport
	TestRegistryCacheImportSessionRebind
	TestRegistryEmptyCacheExport
	TestSnapshotWithMultipleBlobs
	TestUncompressedLocalCacheImportExport
	TestUncompressedRegistryCacheImportExport
	TestUncompressedS3CacheImportExport # silo/mc stand-ins on s3rver
	TestZstdLocalCacheExport
	TestZstdLocalCacheImportExport
	TestZstdRegistryCacheImportExport
	TestZstdS3CacheImportExport # silo/mc stand-ins on s3rver
	# client_export_image_test.go
	TestBuildExportScratch
	TestBuildExportWithForeignLayer
	TestBuildExportZstd
	TestExportBusyboxLocal
	TestInvalidExporter
	TestOCIExporter
	TestOCIExporterContentStore
	TestPullWithDigestCheck
	TestPullZstdImage
	TestPushByDigest
	TestPushProgressSameVertex
	# client_export_metadata_test.go
	TestAttestationBundle
	TestAttestationDefaultSubject
	TestExportAnnotations
	TestExportAnnotationsMediaTypes
	TestExportAttestationsDefaultOCIArtifact
	TestExportAttestationsImageManifest
	TestExportAttestationsOCIArtifact
	TestImageResolveAttestationChainLocal
	TestImageResolveProvenanceAttestation
	TestSBOMScan
	TestSBOMScanSingleRef
	TestSBOMSupplements
	TestSourceDateEpochClamp
	TestSourceDateEpochLayerTimestamps
	TestSourceDateEpochLocalExporter
	TestSourceDateEpochReset
	TestSourceDateEpochTarExporter
	# Added with the whole suite's first run (2026-12-07, --suite): tests of
	# lade-buildkitd's own wiring, a few seconds each.
	# gRPC control API, build history, disk usage (client_control_test.go,
	# client_diskusage_test.go, the history=disabled matrix)
	TestCallInfo
	TestClientCustomGRPCOpts
	TestListenBuildHistoryExcludesSoftDeletedRecords
	TestBuildHistoryDisabled
	TestCallDiskUsage
	# entitlements and the executor (client_exec_test.go, the secmode matrix)
	TestSecurityModeErrors
	TestSecurityModeSysfs
	TestShmSize
	TestUlimit
	TestStdinClosed
	TestRunValidExitCodes
	TestReadonlyRootFS
	# secrets, tmpfs and cache mounts (client_mount_test.go)
	TestSecretEnv
	TestSecretMounts
	TestTmpfsMounts
	TestCachedMounts
	TestSharedCacheMounts
	TestLockedCacheMounts
	TestCacheMountNoCache
	# network modes, hosts, proxy environment (client_network_test.go)
	TestNetworkMode
	TestHostnameLookup
	TestHostnameSpecifying
	TestExtraHosts
	TestResolveAndHosts
	TestProxyEnv
	# CDI devices and their entitlement (client_cdi_test.go)
	TestCDI
	TestCDINotAllowed
	TestCDIEntitlement
	TestCDIWildcard
	TestCDIFirst
	TestCDIClass
	# the gateway API and its containers (TestClientGatewayIntegration)
	TestClientGatewaySolve
	TestClientGatewayContainerSecretEnv
	TestClientGatewayContainerExtraHosts
	TestClientGatewayContainerInvalidSecurityMode
	TestClientGatewayContainerSecurityModeValidation
	TestClientGatewayContainerMounts
	TestClientGatewayContainerPID1Exit
	TestClientGatewayContainerPID1Fail
	TestClientGatewayContainerExecPipe
	TestClientGatewayContainerSignal
	TestClientGatewayContainerCancelOnRelease
	TestClientGatewayExecError
	TestClientGatewayEmptySolve
	TestClientGatewayNilResult
	TestNoBuildID
	TestUnknownBuildID
	# frontends returning results and metadata (client_frontend_test.go)
	TestFrontendMetadataReturn
	TestFrontendUseSolveResults
	TestFrontendImageNaming
	# sessions, warnings, validation of exporter input
	TestSessionExporter
	TestSessionExporterFinalizeExport
	TestHTTPPruneAfterCacheKey # prune between builds
	TestSourcePolicySession
	TestWarnings
	TestValidateNullConfig
	TestValidateInvalidConfig
	TestValidatePlatformsEmpty
	TestValidatePlatformsInvalid
)

# The CI subset's tests on BuildKit's containerd test worker: the ones that
# skip on the oci worker (they need containerd's image store) and pass on
# both daemons there.
ci_containerd_tests=(
	TestBuildExportWithUncompressed
	TestImageResolveConfigDefaultLocalFallback
	TestLazyImagePush
)

# The files --all covers (their sections of allTests in client/client_test.go).
all_files=(client_export_image_test.go client_export_metadata_test.go client_cache_test.go)

# main is the whole run; bash reads it completely before running it, so an
# edit of this file does not disturb a run in progress.
main() {
	mode=ci regex="" daemon="" worker=""
	while [ $# -gt 0 ]; do
		case $1 in
		--all) mode=all ;;
		--suite) mode=suite ;;
		--run)
			[ $# -ge 2 ] || { echo "conformance: --run needs a REGEX (see --help)" >&2; exit 2; }
			mode=run regex=$2
			shift
			;;
		--daemon)
			[ $# -ge 2 ] || { echo "conformance: --daemon needs stock, lade or both" >&2; exit 2; }
			daemon=$2
			shift
			;;
		--worker)
			[ $# -ge 2 ] || { echo "conformance: --worker needs oci, containerd or both" >&2; exit 2; }
			worker=$2
			shift
			;;
		-h | --help) usage; exit 0 ;;
		*) echo "conformance: unknown argument $1 (see --help)" >&2; exit 2 ;;
		esac
		shift
	done
	[ -n "$daemon" ] || { [ "$mode" = all ] && daemon=all || daemon=both; }
	case $daemon in
	stock | lade | compat) daemons=$daemon ;;
	both) daemons="stock lade" ;;
	all) daemons="stock lade compat" ;;
	*) echo "conformance: --daemon must be stock, lade, compat, both or all, not $daemon" >&2; exit 2 ;;
	esac
	[ -n "$worker" ] || { [ "$mode" = all ] && worker=both || worker=oci; }
	case $worker in
	oci | containerd) workers=$worker ;;
	both) workers=oci,containerd ;;
	*) echo "conformance: --worker must be oci, containerd or both, not $worker" >&2; exit 2 ;;
	esac
	[ "$(id -u)" -eq 0 ] || { echo "conformance: the oci worker needs root; run as root" >&2; exit 1; }
	for tool in runc containerd docker-registry busybox curl jq flock node s3rver azurite; do
		command -v "$tool" >/dev/null || { echo "conformance: $tool not installed: run hack/install-test-deps.sh" >&2; exit 1; }
	done

	source hack/conformance/mirror.sh

	bk_dir=$(go list -m -f '{{.Dir}}' github.com/moby/buildkit)
	bk_version=$(go list -m -f '{{.Version}}' github.com/moby/buildkit)
	cache=${LADE_CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lade-conformance}
	mkdir -p "$cache"
	work=$(mktemp -d /tmp/lade-conformance.XXXXXX)
	trap 'rm -rf "$work/bin"' EXIT

	# all_tests prints "FILE<TAB>TestName" for every test of allTests in
	# client_test.go (the names integration.Run gives them), in its order.
	all_tests() {
		awk '/^var allTests/ { on = 1; next } on && /^}/ { exit } on' "$bk_dir/client/client_test.go" |
			awk '/^\t\/\/ client_/ { f = $2; next }
				/^\ttest[A-Za-z0-9_]*,$/ { gsub(/[\t,]/, ""); print f "\tTest" substr($0, 5) }'
	}

	# suite_tests prints "FILE<TAB>TestName" for every integration test
	# function of the client package (func testXxx(t, sb integration.Sandbox)
	# and the named diff-op cases), whether TestIntegration or
	# TestClientGatewayIntegration runs it; the report keeps the rows that ran.
	suite_tests() {
		local f
		for f in "$bk_dir"/client/*_test.go; do
			# Files built only with a tag the test binary is not built with.
			grep -qE '^//go:build (nydus|!linux)$' "$f" && continue
			sed -nE -e 's/^func test([A-Z][A-Za-z0-9_]*)\(t \*testing\.T, sb integration\.Sandbox\).*/Test\1/p' \
				-e 's/^[[:space:]]*name:[[:space:]]*"(Test[A-Za-z0-9_]*)",.*/\1/p' "$f" |
				sed "s|^|${f##*/}\t|"
		done | awk -F'\t' '!seen[$2]++' # a diff-op case name can repeat
	}

	# passes FILE prints "TOP<TAB>NAME|NAME..." lines for the test names of
	# FILE (FILE<TAB>TestName lines): one line per integration.Run group of
	# client_test.go's TestIntegration and TestClientGatewayIntegration
	# that has any, each to run as one `go test`. A group starts its own
	# mirror registry on the mirror's fixed port, so two groups cannot run
	# in one process. The last group is allTests with the validation and
	# diff-op cases: every name that no other group lists.
	passes() {
		local list=$1
		local groups
		groups=$(awk '/^func (testIntegration|TestClientGatewayIntegration)\(/ {
				on = 1; top = ($2 ~ /^TestClient/) ? "TestClientGatewayIntegration" : "TestIntegration"; next }
			on && /^}/ { on = 0 }
			on && /integration\.Run\(/ { n++ }
			on && /^\t+test[A-Z][A-Za-z0-9_]*,?$/ { gsub(/[\t,]/, ""); print top "\t" n "\tTest" substr($0, 5) }' \
			"$bk_dir/client/client_test.go"
			awk '/^var cdiTests/ { on = 1; next } on && /^}/ { exit }
				on && /^\ttest[A-Za-z0-9_]*,$/ { gsub(/[\t,]/, ""); print "TestIntegration\tcdi\tTest" substr($0, 5) }' \
				"$bk_dir/client/client_cdi_test.go")
		# Groups in order, each with its names that tests.txt lists; then the rest.
		awk -F'\t' 'NR == FNR { want[$2] = 1; next }
			$3 in want { g = $1 "\t" $2; if (!(g in names)) { order[++n] = g; names[g] = $3 } else names[g] = names[g] "|" $3 }
			END { for (i = 1; i <= n; i++) { split(order[i], k, "\t"); print k[1] "\t" names[order[i]] } }' \
			"$list" - <<<"$groups"
		local rest
		# grep finds nothing when every name is in a group: not an error.
		rest=$(cut -f2 "$list" | { grep -vxF -f <(cut -f3 <<<"$groups") || true; } | paste -sd'|')
		[ -z "$rest" ] || printf 'TestIntegration\t%s\n' "$rest"
	}

	# known.txt: allTests (its files as its comments say), then the other
	# integration tests (TestClientGatewayIntegration's, the matrix ones).
	{ all_tests; suite_tests; } | awk -F'\t' '!seen[$2]++' >"$work/known.txt"
	# pick FIELD WORD...: the lines of known.txt whose FIELD (1 file, 2 test) is one of WORDs.
	pick() {
		local field=$1
		shift
		awk -F'\t' -v f="$field" -v words="$*" \
			'BEGIN { n = split(words, w, " "); for (i = 1; i <= n; i++) want[w[i]] = 1 } $f in want' \
			"$work/known.txt"
	}
	case $mode in
	all)
		pick 1 "${all_files[@]}" >"$work/tests.txt"
		title="BuildKit $bk_version client integration tests: exporters, metadata, cache"
		;;
	suite)
		suite_tests >"$work/tests.txt"
		title="BuildKit $bk_version client integration tests: the whole suite"
		;;
	run)
		suite_tests | awk -F'\t' -v re="$regex" '$2 ~ re' >"$work/tests.txt"
		title="BuildKit $bk_version client integration tests matching $regex"
		;;
	ci)
		{
			pick 2 "${ci_tests[@]}" | sed 's/$/\toci/'
			pick 2 "${ci_containerd_tests[@]}" | sed 's/$/\tcontainerd/'
		} | sort -s -t$'\t' -k1,1 >"$work/tests.txt"
		worker=both workers=oci,containerd
		title="BuildKit $bk_version client integration tests: CI subset"
		;;
	esac
	if [ ! -s "$work/tests.txt" ]; then
		echo "conformance: no test of $bk_dir/client/client_test.go's allTests matches" >&2
		exit 2
	fi
	echo "conformance: $(wc -l <"$work/tests.txt") tests, daemon $daemon, worker $worker, work dir $work"

	echo "== building the test binary, stock buildkitd and buildctl, lade-buildkitd"
	mkdir -p "$work/bin"
	go test -c -o "$work/bin/client.test" github.com/moby/buildkit/client
	go build -o "$work/bin/" github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl
	go build -o "$work/bin/report" ./hack/conformance
	lade_bin=${LADE_BUILDKITD:-}
	if [ -z "$lade_bin" ] && [ "$daemon" != stock ]; then
		go build -o "$work/bin/lade-buildkitd" ./cmd/lade-buildkitd
		lade_bin=$work/bin/lade-buildkitd
	fi

	echo "== mirror"
	exec 9>"$cache/run.lock"
	if ! flock -n 9; then
		echo "conformance: another conformance run holds $cache/run.lock; waiting for it"
		flock 9
	fi
	build_mirror "$cache/mirror"
	if (exec 3<>"/dev/tcp/127.0.0.1/$mirror_port") 2>/dev/null; then
		echo "conformance: 127.0.0.1:$mirror_port, the mirror registry's port, is in use; stop what listens there or set LADE_CONFORMANCE_MIRROR_PORT" >&2
		exit 1
	fi

	# run_daemon NAME BUILDKITD [ENV...]: runs the selected tests with
	# BUILDKITD as `buildkitd`, its environment changed by env(1) arguments
	# ENV, writing $work/NAME.json.
	run_daemon() {
		local name=$1 bkd=$2 path=$work/path-$1 names w top
		shift 2
		mkdir -p "$path"
		ln -sf "$bkd" "$path/buildkitd"
		ln -sf "$work/bin/buildctl" "$path/buildctl"
		ln -sf "$(command -v docker-registry)" "$path/registry"
		# BuildKit's S3 tests start MinIO (`silo`, `mc`): stand-ins on s3rver.
		ln -sf "$root/hack/conformance/s3/silo" "$path/silo"
		ln -sf "$root/hack/conformance/s3/mc" "$path/mc"
		: >"$work/$name.json"
		for w in ${workers//,/ }; do
			# The tests for worker w: lines without a worker, or naming w,
			# run one integration.Run group at a time (see passes).
			awk -F'\t' -v w="$w" '$3 == "" || $3 == w' "$work/tests.txt" >"$work/tests-$w.txt"
			passes "$work/tests-$w.txt" >"$work/passes-$w.txt"
			while IFS=$'\t' read -r -u 3 top names; do
				run_pass "$name" "$w" "$top" "$names" "$@"
			done 3<"$work/passes-$w.txt"
		done
	}

	# run_pass NAME WORKER TOP NAMES [ENV...]: runs the tests NAMES (a|b|c)
	# of the top-level test(s) TOP on WORKER, appending to $work/NAME.json.
	run_pass() {
		local name=$1 w=$2 top=$3 names=$4 path=$work/path-$1 rc=0
		shift 4
		echo "== $name, worker=$w: $(tr '|' '\n' <<<"$names" | wc -l) tests of $top ($(date -u +%H:%M:%S))"
		# REGISTRY_VALIDATION_DISABLED: the test registries take foreign-layer
		# URLs, as Docker Hub does (see hack/conformance/mirror.sh).
		env "$@" PATH="$path:$PATH" GOMAXPROCS="${LADE_CONFORMANCE_PARALLEL:-2}" \
			BUILDKIT_REGISTRY_MIRROR_DIR="$cache/mirror" REGISTRY_VALIDATION_DISABLED=true \
			go tool test2json -p client "$work/bin/client.test" -test.v=test2json \
			-test.run "^$top\$/^($names)\$/^worker=$w\$" \
			-test.parallel "${LADE_CONFORMANCE_PARALLEL:-2}" -test.timeout "$timeout" \
			>>"$work/$name.json" 2>&1 9>&- || rc=$?
		echo "== $name, worker=$w: done ($(date -u +%H:%M:%S)), go test exit $rc"
	}

	timeout=90m
	[ "$mode" != suite ] || timeout=6h
	report_args=(-tests "$work/tests.txt" -workers "$workers" -reasons hack/conformance/stock-offline.txt -title "$title" -out "$work/table.md")
	# The suite's list names every test function; --run's every match.
	[ "$mode" = ci ] || [ "$mode" = all ] || report_args+=(-ran-only)
	for d in $daemons; do
		case $d in
		stock) run_daemon stock "$work/bin/buildkitd" ;;
		lade) run_daemon lade "$lade_bin" -u LADE_STOCK_COMPAT -u LADE_KEEP_EMPTY_LAYERS -u LADE_GZIP_COMPAT -u LADE_STOCK_TAR_METADATA ;;
		# lade's intended differences switched off (docs/buildkitd.md).
		compat) run_daemon compat "$lade_bin" LADE_STOCK_COMPAT=true ;;
		esac
		report_args+=("-$d" "$work/$d.json")
	done
	exec 9>&-

	echo
	"$work/bin/report" "${report_args[@]}"
	echo
	echo "conformance: logs: $work/{${daemons// /,}}.json (go test -json); table: $work/table.md"
	if [ "$mode" = all ]; then
		if [ -d /work/notes ]; then
			cp "$work/table.md" /work/notes/conformance-latest.txt
		fi
		if [ "$daemon" = all ] && [ "$worker" = both ]; then
			cat hack/conformance/doc-header.md - "$work/table.md" >docs/conformance.md <<<"## Results"
			echo "conformance: wrote docs/conformance.md"
		fi
	fi
	if [ "$mode" = suite ]; then
		if [ -d /work/notes ]; then
			cp "$work/table.md" /work/notes/conformance-suite-latest.txt
		fi
		if [ "$daemon" = both ] || [ "$daemon" = all ]; then
			# The containerd worker's table has a page of its own.
			suite_doc=docs/conformance-suite.md suite_header=hack/conformance/suite-header.md
			if [ "$worker" = containerd ]; then
				suite_doc=docs/conformance-suite-containerd.md suite_header=hack/conformance/suite-header-containerd.md
			fi
			cat "$suite_header" "$work/table.md" >"$suite_doc"
			echo "conformance: wrote $suite_doc"
		fi
	fi
	if [ "$mode" = ci ]; then
		# The CI subset must pass on every daemon run.
		"$work/bin/report" "${report_args[@]}" -out "" -require-pass >/dev/null
		echo "conformance: the CI subset passed"
	fi
}

main "$@"; exit # on one line: bash reads no further, so an edit during a run is harmless
