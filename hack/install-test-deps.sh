#!/usr/bin/env bash
# Installs everything lade's tests need from Debian's packages: the real
# tools every image lade writes is checked with (skopeo, umoci), runc to run
# images, a registry to push to, busybox-static for a runnable base layer and
# htpasswd for registry auth, containerd (a destination) and docker.io (docker
# load and docker commit comparisons), openssl and curl (TLS and debug-address
# tests; curl and jq build hack/conformance.sh's registry mirror), rootlesskit, uidmap and slirp4netns (rootless lade-buildkitd); and buildx, which Debian does not
# package, built from the Go module proxy (the frontend tests drive
# lade-buildkitd through its remote driver). Idempotent; needs root (or sudo).
set -euo pipefail

# libzstd-dev: the headers and library of blobs/internal/libzstd (cgo builds;
# LADE_ZSTD=libzstd selects it at run time). libbtrfs-dev: the headers
# go.podman.io/storage needs in cgo builds (the zstd:chunked tests read layers
# with its reader).
pkgs=(runc skopeo umoci docker-registry busybox-static apache2-utils pigz containerd docker.io openssl curl jq rootlesskit uidmap slirp4netns libzstd-dev libbtrfs-dev)
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-test-deps: all present (${pkgs[*]})"
else
	echo "install-test-deps: installing ${missing[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# buildx: the version the tests were written against, into /usr/local/bin.
buildx_version=v0.38.2
if command -v buildx >/dev/null && go version -m "$(command -v buildx)" 2>/dev/null |
	grep -q "mod[[:space:]]*github.com/docker/buildx[[:space:]]*$buildx_version"; then
	echo "install-test-deps: buildx $buildx_version present"
else
	echo "install-test-deps: building buildx $buildx_version from the Go module proxy"
	tmp=$(mktemp -d)
	GOBIN="$tmp" go install "github.com/docker/buildx/cmd/buildx@$buildx_version"
	$SUDO install -m 0755 "$tmp/buildx" /usr/local/bin/buildx
	rm -rf "$tmp"
fi

# The cache backends' servers, from npm (Debian packages neither): s3rver, an
# S3-compatible server (--export-cache type=s3), and Azurite, Azure's storage
# emulator (type=azblob; the gha fake's blob store too). Installed globally at
# pinned versions; nothing is done when those versions are present.
npm_pkgs=(s3rver@3.7.1 azurite@3.37.0)
if ! command -v npm >/dev/null; then
	echo "install-test-deps: installing nodejs and npm (Debian's)"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
for spec in "${npm_pkgs[@]}"; do
	name=${spec%@*} want=${spec##*@}
	have=$(npm ls -g --depth=0 --json "$name" 2>/dev/null |
		node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).dependencies[process.argv[1]].version)}catch(e){}})' "$name" || true)
	if [ "$have" = "$want" ]; then
		echo "install-test-deps: npm $spec present"
	else
		echo "install-test-deps: npm install -g $spec"
		$SUDO npm install -g --no-fund --no-audit --loglevel=error "$spec" >/dev/null
	fi
done

# libdeflate-dev and libisal-dev: the headers and libraries of lade's native
# gzip encoders (blobs/internal/libdeflate and blobs/internal/isal; cgo
# builds with -tags native, which also builds blobs/internal/libzstd on
# libzstd-dev above).
native_missing=()
for p in libdeflate-dev libisal-dev; do
	dpkg -s "$p" >/dev/null 2>&1 || native_missing+=("$p")
done
if [ ${#native_missing[@]} -eq 0 ]; then
	echo "install-test-deps: native codec libraries present (libdeflate-dev libisal-dev)"
else
	echo "install-test-deps: installing ${native_missing[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${native_missing[@]}" >/dev/null
fi

# zlib1g-dev: soci-snapshotter's ztoc package (cgo, linked with libz.a),
# which the soci tests use to read lade's zTOCs as the snapshotter does.
if dpkg -s zlib1g-dev >/dev/null 2>&1; then
	echo "install-test-deps: zlib1g-dev present"
else
	echo "install-test-deps: installing zlib1g-dev"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq zlib1g-dev >/dev/null
fi
