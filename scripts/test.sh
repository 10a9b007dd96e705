#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, runs the whole test
# suite, then the malformed-input and I/O tests again under ASan + UBSan, then
# a short run of the fuzzers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
if [ -f scripts/fetch-tokenizer-data.sh ]; then bash scripts/fetch-tokenizer-data.sh; fi
bash scripts/build.sh
(cd build && ctest --output-on-failure -j "$(nproc)" --timeout 900)
if [ "${ZOTUNE_SKIP_SANITIZERS:-0}" != 1 ]; then
  BUILD_DIR=build-asan BUILD_TYPE=RelWithDebInfo bash scripts/build.sh -DZOTUNE_SANITIZE=ON -DZOTUNE_BUILD_BENCH=OFF
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ctest --output-on-failure -j "$(nproc)" -L '^sanitize$' --timeout 900)
  # The multi-process tests under the sanitizers too (label mpi, when MPI is
  # built): Open MPI's own allocations live until exit, so leak checks are off.
  (cd build-asan && ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ctest --output-on-failure -L '^mpi$' --timeout 900)
fi
# A short run of every parser's fuzzer (issue #11: clang-14, libFuzzer, ASan +
# UBSan; the clang build takes a few minutes): ZOTUNE_FUZZ_SECONDS per target,
# 10 by default, 0 to leave it out. The long run: docs/reliability.md.
if [ "${ZOTUNE_FUZZ_SECONDS:-10}" != 0 ]; then
  # One input may take 60 s here: a loaded CI machine must not turn a slow input into a finding.
  FUZZ_SECONDS="${ZOTUNE_FUZZ_SECONDS:-10}" FUZZ_TIMEOUT=60 bash scripts/fuzz.sh
fi
