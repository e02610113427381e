#!/usr/bin/env bash
# Builds the registry mirror BuildKit's integration harness serves when
# BUILDKIT_REGISTRY_MIRROR_DIR is set (util/testutil/integration: RunMirror
# runs `registry serve DIR/config.yaml`, storage under DIR/data, and copies an
# image from the internet only when its tag is missing). Offline, every image
# the client tests mirror must already be there: testIntegration in
# client/client_test.go lists library/busybox:latest, library/alpine:latest,
# tonistiigi/test:nolayers and cpuguy83/buildkit-foreign:latest.
#
# The images are made here from Debian's busybox-static with tar, gzip and
# curl against the registry's HTTP API, so nothing depends on the daemons
# under test:
#   library/busybox:latest   one layer: busybox, its applet links, /etc/passwd
#   library/alpine:latest    a stand-in: the busybox layer plus
#                            /etc/alpine-release, /etc/os-release and an
#                            /sbin/apk that fails (offline, nothing installs)
#   tonistiigi/test:nolayers a config and a manifest with no layers
#   cpuguy83/buildkit-foreign:latest  two uncompressed layers, the first foreign
#                            (application/vnd.docker.image.rootfs.foreign.*)
#                            with one URL; the blob is in the mirror too
# containerd's fetcher tries a foreign layer's URLs first and moves on to
# the registry only when a URL answers 404 (any other error fails the pull),
# and the registry accepts only http(s) URLs. So the mirror's registry
# listens on a fixed port (mirror_port) and the URL is a path on it that
# does not exist: offline, the blob comes from the mirror. Docker Hub takes
# foreign URLs; Debian's registry (distribution 2.8) takes them only with
# REGISTRY_VALIDATION_DISABLED=true, which hack/conformance.sh sets for
# every registry the tests start.
#   docker/buildkit-syft-scanner:stable-1  BuildKit's default SBOM
#                            scanner (not in the harness's list: pulled
#                            through the docker.io mirror) as a stand-in:
#                            busybox whose command writes an SPDX in-toto
#                            statement naming no packages, the way the
#                            scanner protocol asks (BUILDKIT_SCAN_DESTINATION)
# All are Docker schema 2 images for linux/amd64 with fixed timestamps, so
# the mirror is the same bytes on every machine.
#
# Usage (sourced by hack/conformance.sh): build_mirror DIR
# DIR is reused when DIR/.lade-mirror-version matches mirror_version.

mirror_port=${LADE_CONFORMANCE_MIRROR_PORT:-47531}
mirror_version="4 port=$mirror_port"
mirror_epoch=1672531200 # 2023-01-01T00:00:00Z
mirror_created=2023-01-01T00:00:00Z

# mirror_scanner is the stand-in SBOM scanner's command.
mirror_scanner='cat >"$BUILDKIT_SCAN_DESTINATION/sbom.spdx.json" <<EOF
{
  "_type": "https://in-toto.io/Statement/v0.1",
  "predicateType": "https://spdx.dev/Document",
  "predicate": {
    "spdxVersion": "SPDX-2.3",
    "dataLicense": "CC0-1.0",
    "SPDXID": "SPDXRef-DOCUMENT",
    "name": "lade-conformance-scanner-stand-in",
    "packages": []
  }
}
EOF'

mt_manifest=application/vnd.docker.distribution.manifest.v2+json
mt_config=application/vnd.docker.container.image.v1+json
mt_layer=application/vnd.docker.image.rootfs.diff.tar.gzip
mt_layer_tar=application/vnd.docker.image.rootfs.diff.tar
mt_foreign_tar=application/vnd.docker.image.rootfs.foreign.diff.tar

# mirror_rootfs_busybox DIR: busybox's root filesystem as the busybox image
# has it: every applet a hard link to /bin/busybox (TestExportBusyboxLocal
# checks that bin/vi is the same file).
mirror_rootfs_busybox() {
	local root=$1 applet
	mirror_rootfs_base "$root"
	for applet in $("$root/bin/busybox" --list); do
		[ "$applet" = busybox ] || ln -f "$root/bin/busybox" "$root/bin/$applet"
	done
}

# mirror_rootfs_base DIR: the directories, /bin/busybox, /etc/passwd and /etc/group.
mirror_rootfs_base() {
	local root=$1
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,home,root,tmp,var/spool/mail,var/www}
	chmod 0700 "$root/root"
	chmod 1777 "$root/tmp"
	install -m 0755 "$(command -v busybox)" "$root/bin/busybox"
	cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
PASSWD
	cat >"$root/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
users:x:100:
nogroup:x:65534:
GROUP
}

# mirror_rootfs_alpine DIR: busybox with its applets as symbolic links at
# their usual paths (as Alpine has them), plus what identifies Alpine.
mirror_rootfs_alpine() {
	local root=$1 applet
	mirror_rootfs_base "$root"
	for applet in $("$root/bin/busybox" --list-full); do
		[ "$applet" = bin/busybox ] || ln -sf /bin/busybox "$root/$applet"
	done
	echo 3.18.4 >"$root/etc/alpine-release"
	cat >"$root/etc/os-release" <<'OSREL'
NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.18.4
PRETTY_NAME="Alpine Linux v3.18 (lade conformance stand-in: busybox, no apk repositories)"
OSREL
	cat >"$root/sbin/apk" <<'APK'
#!/bin/sh
echo "apk: this alpine:latest is lade's offline stand-in; no package can be installed" >&2
exit 1
APK
	chmod 0755 "$root/sbin/apk"
}

# mirror_layer ROOTFS OUT: OUT.tar, a reproducible tar of ROOTFS, and
# OUT.tar.gz; prints the tar's digest (the diffID).
mirror_layer() {
	local root=$1 out=$2
	(cd "$root" && tar --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime="@$mirror_epoch" -cf "$out.tar" $(ls -A))
	gzip -n -9 -c "$out.tar" >"$out.tar.gz"
	echo "sha256:$(sha256sum <"$out.tar" | cut -d' ' -f1)"
}

# mirror_push_blob REGISTRY REPO FILE: uploads FILE (monolithic upload);
# prints its digest.
mirror_push_blob() {
	local reg=$1 repo=$2 file=$3 hex loc sep
	hex=$(sha256sum <"$file" | cut -d' ' -f1)
	loc=$(curl -fsS -X POST -D - -o /dev/null "http://$reg/v2/$repo/blobs/uploads/" |
		tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
	case $loc in http*) ;; *) loc="http://$reg$loc" ;; esac
	sep='&'
	[[ $loc == *\?* ]] || sep='?'
	curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
		--data-binary @"$file" "$loc${sep}digest=sha256:$hex"
	echo "sha256:$hex"
}

# mirror_push_image REGISTRY REPO:TAG WORKDIR HISTORY CMD [LAYER...]: pushes
# an image whose layers are the given "MEDIATYPE|FILE|DIFFID|URL" entries
# (URL empty for regular layers). HISTORY is the created_by of each layer,
# CMD the config's Cmd (a JSON array).
mirror_push_image() {
	local reg=$1 ref=$2 work=$3 history=$4 cmd=$5
	shift 5
	local repo=${ref%%:*} tag=${ref##*:} layers="[]" diffids="[]" hist="[]" spec
	local mt file diffid url dgst size desc cfg
	for spec in "$@"; do
		IFS='|' read -r mt file diffid url <<<"$spec"
		dgst=$(mirror_push_blob "$reg" "$repo" "$file")
		size=$(stat -c %s "$file")
		desc=$(jq -cn --arg mt "$mt" --arg d "$dgst" --argjson s "$size" --arg u "$url" \
			'{mediaType: $mt, size: $s, digest: $d} + (if $u == "" then {} else {urls: [$u]} end)')
		layers=$(jq -c --argjson d "$desc" '. + [$d]' <<<"$layers")
		diffids=$(jq -c --arg d "$diffid" '. + [$d]' <<<"$diffids")
		hist=$(jq -c --arg c "$mirror_created" --arg b "$history" '. + [{created: $c, created_by: $b}]' <<<"$hist")
	done
	jq -cn --arg c "$mirror_created" --argjson ids "$diffids" --argjson h "$hist" --argjson cmd "$cmd" '{
		architecture: "amd64", os: "linux", created: $c,
		config: {Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: $cmd},
		rootfs: {type: "layers", diff_ids: $ids}, history: $h}' >"$work/config.json"
	dgst=$(mirror_push_blob "$reg" "$repo" "$work/config.json")
	cfg=$(jq -cn --arg mt "$mt_config" --arg d "$dgst" --argjson s "$(stat -c %s "$work/config.json")" \
		'{mediaType: $mt, size: $s, digest: $d}')
	jq -cn --arg mt "$mt_manifest" --argjson c "$cfg" --argjson l "$layers" \
		'{schemaVersion: 2, mediaType: $mt, config: $c, layers: $l}' >"$work/manifest.json"
	curl -fsS -o /dev/null -X PUT -H "Content-Type: $mt_manifest" \
		--data-binary @"$work/manifest.json" "http://$reg/v2/$repo/manifests/$tag"
	echo "mirror: pushed $ref"
}

# mirror_start_registry DIR: starts Debian's docker-registry on DIR/config.yaml (the file
# the harness writes, written here first); sets mirror_reg (host:port) and
# mirror_reg_pid.
mirror_start_registry() {
	local dir=$1 log=$1/registry.log i
	cat >"$dir/config.yaml" <<CONFIG
version: 0.1
loglevel: debug
storage:
    filesystem:
        rootdirectory: $dir/data
http:
    addr: 127.0.0.1:$mirror_port
CONFIG
	REGISTRY_VALIDATION_DISABLED=true docker-registry serve "$dir/config.yaml" >"$log" 2>&1 &
	mirror_reg_pid=$!
	for i in $(seq 50); do
		mirror_reg=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$log" | head -1 | sed 's/listening on //')
		[ -n "$mirror_reg" ] && return 0
		sleep 0.1
	done
	echo "mirror: registry did not start; its log:" >&2
	cat "$log" >&2
	return 1
}

# build_mirror DIR: makes DIR a mirror holding the images (see above).
# It runs in a subshell so its registry is stopped however it ends.
build_mirror() (
	set -euo pipefail
	# Not local: the EXIT trap runs after the function's locals are gone.
	dir=$1 work="" mirror_reg_pid=""
	local diff_bb diff_al diff_f1 diff_f2
	if [ "$(cat "$dir/.lade-mirror-version" 2>/dev/null)" = "$mirror_version" ]; then
		echo "mirror: $dir is ready (version $mirror_version)"
		return 0
	fi
	rm -rf "$dir"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	work=$(mktemp -d)
	mirror_rootfs_busybox "$work/busybox"
	mirror_rootfs_alpine "$work/alpine"
	mkdir -p "$work/foreign1/foreign" "$work/foreign2/app"
	echo "a layer a registry need not hold (foreign)" >"$work/foreign1/foreign/README"
	echo "a regular layer" >"$work/foreign2/app/README"
	diff_bb=$(mirror_layer "$work/busybox" "$work/bb")
	diff_al=$(mirror_layer "$work/alpine" "$work/al")
	diff_f1=$(mirror_layer "$work/foreign1" "$work/f1")
	diff_f2=$(mirror_layer "$work/foreign2" "$work/f2")

	trap '[ -z "$work" ] || rm -rf "$work"; [ -z "$mirror_reg_pid" ] || kill "$mirror_reg_pid" 2>/dev/null || true' EXIT
	mirror_start_registry "$dir" || return 1
	mirror_push_image "$mirror_reg" library/busybox:latest "$work" "busybox-static 1.35 (Debian)" '["sh"]' \
		"$mt_layer|$work/bb.tar.gz|$diff_bb|"
	mirror_push_image "$mirror_reg" library/alpine:latest "$work" "alpine stand-in: busybox-static" '["sh"]' \
		"$mt_layer|$work/al.tar.gz|$diff_al|"
	mirror_push_image "$mirror_reg" tonistiigi/test:nolayers "$work" "no layers" '["sh"]'
	mirror_push_image "$mirror_reg" docker/buildkit-syft-scanner:stable-1 "$work" "SBOM scanner stand-in" \
		"$(jq -cn --arg s "$mirror_scanner" '["/bin/sh", "-c", $s]')" \
		"$mt_layer|$work/bb.tar.gz|$diff_bb|"
	mirror_push_image "$mirror_reg" cpuguy83/buildkit-foreign:latest "$work" "foreign test" '["sh"]' \
		"$mt_foreign_tar|$work/f1.tar|$diff_f1|http://127.0.0.1:$mirror_port/lade-conformance/foreign-layer.tar" \
		"$mt_layer_tar|$work/f2.tar|$diff_f2|"
	kill "$mirror_reg_pid" 2>/dev/null
	wait "$mirror_reg_pid" 2>/dev/null || true
	mirror_reg_pid=
	rm -f "$dir/registry.log"
	echo "$mirror_version" >"$dir/.lade-mirror-version"
	echo "mirror: built $dir"
)
