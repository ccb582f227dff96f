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

start=$(date +%s)
CGO_ENABLED=0 go build -ldflags='-s -w' -o "$bin/" \
  ./cmd/ledger ./cmd/projector github.com/nats-io/nats-server/v2
built=$(date +%s)

# The context is the binaries' directory alone: three files, nothing else
# sent to the daemon.
docker build --quiet --tag "$image" --file deploy/Dockerfile "$bin" >/dev/null
echo "built $image: binaries $((built - start))s, image $(($(date +%s) - built))s" >&2
