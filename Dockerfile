# lade-buildkitd: a buildkitd-compatible daemon whose image, oci and docker
# exporters are lade's, with runc for RUN steps and the stock buildctl.
#
#   docker build -t lade-buildkitd .
#   docker run -d --name lade-buildkitd --privileged \
#     -v /run/lade-buildkitd:/run/buildkit lade-buildkitd
#   buildctl --addr unix:///run/lade-buildkitd/buildkitd.sock build ...
#   buildctl --addr docker-container://lade-buildkitd build ...
#
# Arguments after the image name are lade-buildkitd's flags. The state is
# on the /var/lib/buildkit volume, so the default snapshotter is overlayfs;
# a --root on the container's own overlay2 file system gets the native one.
# docs/buildkitd.md ("Running under Docker") has the details; the tests
# (frontend-test/docker_test.go) run an image with the same layout, built
# with lade instead of this file, since they cannot pull the bases.
#
# The image also answers to the name buildkitd (a symlink), so buildx's
# docker-container driver can run it:
#   docker buildx create --driver docker-container \
#     --driver-opt image=lade-buildkitd --name lade

ARG GO_VERSION=1.26
ARG DEBIAN_VERSION=bookworm

FROM golang:${GO_VERSION}-${DEBIAN_VERSION} AS build
# The native encoders' headers and libraries (cgo, -tags native): libdeflate
# and ISA-L for gzip, libzstd for zstd (docs/performance.md).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libdeflate-dev libisal-dev libzstd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# lade-buildkitd with the native encoders (LADE_CODECS=go in its
# environment picks the pure-Go ones); buildctl is BuildKit v0.34.2's, the
# version lade-buildkitd serves.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -tags native -trimpath -ldflags "-s -w" -o /out/ ./cmd/lade-buildkitd \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/ github.com/moby/buildkit/cmd/buildctl

FROM debian:${DEBIAN_VERSION}-slim
# runc runs RUN steps; git, ssh and xz serve BuildKit's git and context
# sources; pigz speeds up gzip decompression of pulled layers; libdeflate0,
# libisal2 and libzstd1 are the native encoders' libraries.
RUN apt-get update \
 && apt-get install -y --no-install-recommends runc ca-certificates git openssh-client pigz xz-utils \
        libdeflate0 libisal2 libzstd1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/lade-buildkitd /out/buildctl /usr/bin/
RUN ln -s lade-buildkitd /usr/bin/buildkitd
VOLUME /var/lib/buildkit
ENTRYPOINT ["lade-buildkitd"]
