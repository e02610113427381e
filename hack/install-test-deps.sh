#!/usr/bin/env bash
# Installs everything lade's tests need from Debian's packages: the real
# tools every image lade writes is checked with (skopeo, umoci), runc to run
# images, a registry to push to, busybox-static for a runnable base layer and
# htpasswd for registry auth, containerd (a destination) and docker.io (docker
# load and docker commit comparisons). Idempotent; needs root (or sudo).
set -euo pipefail

pkgs=(runc skopeo umoci docker-registry busybox-static apache2-utils pigz containerd docker.io)
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-test-deps: all present (${pkgs[*]})"
	exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-test-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
