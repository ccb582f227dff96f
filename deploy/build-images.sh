#!/usr/bin/env bash
# Builds the image docker-compose.yml runs, with nothing pulled from a registry:
# the ledger, the projector and nats-server (from the nats-server module go.mod
# requires) as static binaries on the host, into deploy/bin, then a FROM scratch
# image of the three.
#
#   deploy/build-images.sh                  # tag ledger-local:dev
#   LEDGER_IMAGE=ledger-local:x deploy/build-images.sh
#   LEDGER_BIN_DIR=/tmp/x deploy/build-images.sh   # binaries elsewhere (default deploy/bin)
#
# Go's build cache makes a rebuild after a small change take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

image="${LEDGER_IMAGE:-ledger-local:dev}"
bin="${LEDGER_BIN_DIR:-deploy/bin}"
mkdir -p "$bin"

# `ledger version` and `projector version` print this (and the commit go
# build stamps): the nearest tag, or the commit, with -dirty for local changes.
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)

start=$(date +%s)
CGO_ENABLED=0 go build -ldflags="-s -w -X github.com/ledgerworks/ledger/internal/cli.Version=$version" -o "$bin/" \
  ./cmd/ledger ./cmd/projector github.com/nats-io/nats-server/v2
built=$(date +%s)

# The context is the binaries' directory alone: three files, nothing else
# sent to the daemon.
docker build --quiet --tag "$image" --file deploy/Dockerfile "$bin" >/dev/null
echo "built $image: binaries $((built - start))s, image $(($(date +%s) - built))s" >&2
