#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS seconds (default 60) from the checked-in seeds, one target
# after another, and fails if any of them crashes, panics, times out or runs out of memory.
#
#   tests/fuzz/run.sh                         # all targets, 60 s each
#   FUZZ_SECONDS=300 tests/fuzz/run.sh token  # some targets, longer
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Each target's corpus is a
# scratch copy of tests/fuzz/seeds/<target> under tests/fuzz/corpus/ (git-ignored; kept between runs,
# so later runs start from what earlier ones found; delete it to start over). A crashing input is
# written to tests/fuzz/artifacts/<target>/ (git-ignored); turn it into a test in
# tests/fuzz_regressions. One fuzzing process at a time (libFuzzer's default: one job, one worker).
set -euo pipefail

FUZZ_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$FUZZ_DIR/../.."
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
ALL_TARGETS=(token jwks discovery config decision opaque_answer rsa_signature jwt_simple_diff p256_signature p384_signature json_scan sse)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${ALL_TARGETS[@]}"); fi

cargo +nightly fuzz build --fuzz-dir "$FUZZ_DIR"

failed=()
for target in "${targets[@]}"; do
  corpus=$FUZZ_DIR/corpus/$target
  mkdir -p "$corpus" "$FUZZ_DIR/artifacts/$target"
  cp -n "$FUZZ_DIR/seeds/$target/"* "$corpus/"
  dict=$FUZZ_DIR/corpus/$target.dict
  cat "$FUZZ_DIR/dict/json.dict" "$FUZZ_DIR/dict/$target.dict" >"$dict"
  echo "=== fuzz $target for ${FUZZ_SECONDS}s ($(find "$corpus" -type f | wc -l) inputs in $corpus)"
  # rsa_signature, jwt_simple_diff, p256_signature and p384_signature are arithmetic-bound (their harnesses sign):
  # without ASan, which safe Rust gains little from, they run 2-10x faster. Their own target dir
  # keeps the builds apart.
  flags=()
  case $target in
    rsa_signature | jwt_simple_diff | p256_signature | p384_signature) flags=(--sanitizer none --target-dir "$FUZZ_DIR/target/nosan") ;;
  esac
  if ! cargo +nightly fuzz run --fuzz-dir "$FUZZ_DIR" "${flags[@]}" "$target" "$corpus" -- \
    -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -dict="$dict" -print_final_stats=1; then
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing failed: ${failed[*]} (inputs in $FUZZ_DIR/artifacts/)" >&2
  exit 1
fi
echo "fuzzing passed: ${targets[*]} (${FUZZ_SECONDS}s each)"
