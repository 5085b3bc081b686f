#!/usr/bin/env bash
# Release artefacts for `make dist`: the filter and its SHA-256 in sha256sum format.
#
#   deploy/dist.sh                       # dist/gateway_filter.wasm -> dist/gateway_filter.wasm.sha256
#   WASM=path/to/gateway_filter.wasm DIST_DIR=out deploy/dist.sh
#
# WASM (the built filter, default dist/gateway_filter.wasm) is copied into DIST_DIR (default dist)
# unless it is already there; DIST_DIR/gateway_filter.wasm.sha256 is written so that
# `cd DIST_DIR && sha256sum -c gateway_filter.wasm.sha256` checks it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WASM="${WASM:-dist/gateway_filter.wasm}"
DIST_DIR="${DIST_DIR:-dist}"
NAME="gateway_filter.wasm"

if [ ! -f "$WASM" ]; then
  echo "error: $WASM is missing: run 'make build' first" >&2
  exit 1
fi
if [ "$(head -c 4 "$WASM" | od -An -tx1 | tr -d ' \n')" != "0061736d" ]; then
  echo "error: $WASM is not a WebAssembly module: run 'make build'" >&2
  exit 1
fi

mkdir -p "$DIST_DIR"
src="$(cd "$(dirname "$WASM")" && pwd)/$(basename "$WASM")"
dst="$(cd "$DIST_DIR" && pwd)/$NAME"
if [ "$src" != "$dst" ]; then
  cp "$src" "$dst"
fi

if command -v sha256sum >/dev/null 2>&1; then
  (cd "$DIST_DIR" && sha256sum "$NAME" > "$NAME.sha256")
else
  (cd "$DIST_DIR" && shasum -a 256 "$NAME" > "$NAME.sha256")   # macOS: same output format
fi
digest="$(cut -d' ' -f1 < "$DIST_DIR/$NAME.sha256")"

cat <<MSG
$DIST_DIR/$NAME
$DIST_DIR/$NAME.sha256
sha256 $digest

Pin this build wherever the .wasm file itself is fetched:
  Envoy:          vm_config.code.remote.sha256: "$digest"   (with code.remote.http_uri)
  Istio:          WasmPlugin.spec.sha256: $digest   (url: https://... or http://...)
  Envoy Gateway:  wasm[].code.http.sha256: $digest   (code.type: HTTP)
For an OCI image (deploy/oci.sh), Istio (oci:// url) and Envoy Gateway (code.type: Image) compare
the image digest instead, which the registry reports after the push; see docs/deploying.md.
MSG
