#!/usr/bin/env bash
# Build the OCI image of the filter (deploy/Dockerfile) with docker, podman or buildah.
#
#   deploy/oci.sh                                   # image gateway-filter:<Cargo version>
#   IMAGE=registry.example.com/platform/gateway-filter:0.1.0 deploy/oci.sh
#   OCI_BUILDER=buildah deploy/oci.sh               # pick the tool (docker | podman | buildah)
#
# When no usable tool exists (none installed, or docker without a reachable daemon), it prints the
# commands to run elsewhere and exits 0, saying clearly that NOTHING WAS BUILT. It never pushes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WASM="dist/gateway_filter.wasm"
DOCKERFILE="deploy/Dockerfile"
VERSION="$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)"
IMAGE="${IMAGE:-gateway-filter:${VERSION:-dev}}"

if [ ! -f "$WASM" ]; then
  echo "error: $WASM is missing: run 'make build' first" >&2
  exit 1
fi
if [ "$(head -c 4 "$WASM" | od -An -tx1 | tr -d ' \n')" != "0061736d" ]; then
  echo "error: $WASM is not a WebAssembly module: run 'make build'" >&2
  exit 1
fi

# `docker info` waits for the daemon; bound it where `timeout` exists.
run_bounded() {
  if command -v timeout >/dev/null 2>&1; then timeout 15 "$@"; else "$@"; fi
}

usable() {
  case "$1" in
    docker) command -v docker >/dev/null 2>&1 && run_bounded docker info >/dev/null 2>&1 ;;
    podman) command -v podman >/dev/null 2>&1 ;;
    buildah) command -v buildah >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

builder=""
if [ -n "${OCI_BUILDER:-}" ]; then
  if usable "$OCI_BUILDER"; then
    builder="$OCI_BUILDER"
  else
    echo "note: OCI_BUILDER=$OCI_BUILDER is not usable here (not installed, or no daemon)" >&2
  fi
else
  for b in docker podman buildah; do
    if usable "$b"; then builder="$b"; break; fi
  done
fi

if [ -z "$builder" ]; then
  why="none of docker, podman, buildah is installed"
  if command -v docker >/dev/null 2>&1; then
    why="the docker CLI is installed but its daemon is not reachable; podman and buildah are not installed"
  fi
  cat <<MSG
NOTHING WAS BUILT: no usable image builder ($why).

On a machine with one of them, from the repository root (after 'make build'):
  docker build -f $DOCKERFILE -t $IMAGE .
  # or: podman build -f $DOCKERFILE -t $IMAGE .
  # or: buildah bud -f $DOCKERFILE -t $IMAGE .
Then push it and read the digest to pin (Istio WasmPlugin.spec.sha256 for an oci:// url,
Envoy Gateway code.image.sha256):
  docker push $IMAGE
  docker buildx imagetools inspect $IMAGE      # "Digest: sha256:<hex>"
MSG
  exit 0
fi

# A build context holding only the module, so that target/ and the rest of the repository are
# not sent to the builder.
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/dist"
cp "$WASM" "$ctx/dist/gateway_filter.wasm"

echo "building $IMAGE with $builder from $DOCKERFILE"
case "$builder" in
  docker|podman) "$builder" build -f "$DOCKERFILE" -t "$IMAGE" "$ctx" ;;
  buildah) buildah bud -f "$DOCKERFILE" -t "$IMAGE" "$ctx" ;;
esac

cat <<MSG
built $IMAGE ($builder). Nothing was pushed. Next:
  $builder push $IMAGE
Pin what the cluster pulls by the image digest the registry reports after the push (not the
sha256 of the .wasm file: for oci:// both Istio and Envoy Gateway compare the image digest):
  Istio:          WasmPlugin.spec.url: oci://$IMAGE  and  spec.sha256: <digest hex without "sha256:">
  Envoy Gateway:  wasm[].code.image.url: $IMAGE  and  code.image.sha256: <digest hex>
MSG
