#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ (clang-14, ASan + UBSan) into
# ${BUILD_DIR:-build-fuzz} and runs each for FUZZ_SECONDS (default 15) on a
# corpus seeded from the test fixtures (tests/golden) and fuzz/seeds.
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh           the long run (10 min per target)
#   FUZZ_TARGETS="jsonl config" bash scripts/fuzz.sh
# FUZZ_TIMEOUT (default 10 s) is the time one input may take before it counts as a finding.
# The corpus grows in $BUILD_DIR/corpus/<target> and is reused by later runs.
# A finding leaves crash-*/timeout-*/oom-* in $BUILD_DIR/findings and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-fuzz}
SECS=${FUZZ_SECONDS:-15}
TARGETS=${FUZZ_TARGETS:-"safetensors config tokenizer jsonl update_log trainer_state"}
if ! command -v clang++-14 >/dev/null || ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "fuzz.sh: needs clang-14, libclang-rt-14-dev and libomp-14-dev (apt-get install them)" >&2
  exit 2
fi
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCMAKE_C_COMPILER=clang-14 \
  -DCMAKE_CXX_COMPILER=clang++-14 -DZOTUNE_BUILD_FUZZERS=ON -DZOTUNE_BUILD_TESTS=OFF -DZOTUNE_BUILD_BENCH=OFF >/dev/null
ninja -C "$BUILD_DIR" -j "$(nproc)" $(for t in $TARGETS; do printf 'fuzz_%s ' "$t"; done)
mkdir -p "$BUILD_DIR/findings"
# The targets' input files (fuzz/fuzz_util.h): one directory for the whole run,
# in RAM when /dev/shm is there, removed at the end whatever ended a target.
scratch=$(mktemp -d -p /dev/shm zotune-fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export ZOTUNE_FUZZ_SCRATCH=$scratch
status=0
for t in $TARGETS; do
  corpus="$BUILD_DIR/corpus/$t"
  mkdir -p "$corpus"
  case $t in
    safetensors) for f in tests/golden/*/*.safetensors; do cp "$f" "$corpus/seed-$(basename "$(dirname "$f")")-$(basename "$f")"; done
                 max_len=16384 ;;  # the header is at the front; longer seeds are cut
    config)      for f in tests/golden/*/config.json; do cp "$f" "$corpus/seed-$(basename "$(dirname "$f")").json"; done
                 max_len=8192 ;;
    *)           cp fuzz/seeds/"$t"/* "$corpus/"; max_len=65536 ;;
  esac
  echo "== fuzz_$t: ${SECS}s"
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$BUILD_DIR/fuzz/fuzz_$t" -max_total_time="$SECS" -max_len="$max_len" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$BUILD_DIR/findings/$t-" "$corpus" >"$BUILD_DIR/fuzz_$t.log" 2>&1; then
    status=1
    echo "fuzz_$t: FINDING (see $BUILD_DIR/fuzz_$t.log and $BUILD_DIR/findings)"
  fi
  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|cov:" "$BUILD_DIR/fuzz_$t.log" | tail -3 || true
done
exit $status
