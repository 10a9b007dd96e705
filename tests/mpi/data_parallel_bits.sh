#!/usr/bin/env bash
# Data parallelism byte for byte (issue #12) with the AVX-512 kernel sets of
# OpenBLAS 0.3.21 (SkylakeX, Cooperlake), whose products give each row the
# same bits whatever the number of rows in the call once zotune keeps the
# small "TN" kernel out (kernels/gemm_openblas.cpp). For every architecture ARCH
# given, against the single process on the same global batch:
#   - 2 ranks on batches of unequal lengths (each rank pads to its own longest),
#   - 4 ranks (one example each) on batches of unequal lengths (each rank runs
#     its sequence at its own length: attention takes its row path for a
#     sequence under 8 tokens, the block path inside the padded batch; the two
#     paths do the same arithmetic, kernels/attention.cpp) and of equal lengths.
# Registered only on hosts with AVX-512 (tests/CMakeLists.txt). With other
# kernel sets (Haswell: AVX2) rows depend on the row count and data_parallel.sh
# holds the trajectories to a tolerance instead.
# Usage: data_parallel_bits.sh ZOTUNE_BINARY ARCH...
set -euo pipefail
Z=$(realpath "$1"); shift
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

python3 - <<'PY'
import json, random
random.seed(7)
with open("ragged.jsonl", "w") as f:
    for i in range(24):
        print(json.dumps({"input_ids": [random.randrange(0, 200) for _ in range(random.randrange(5, 17))]}), file=f)
with open("even.jsonl", "w") as f:
    for i in range(24):
        print(json.dumps({"input_ids": [random.randrange(0, 200) for _ in range(12)]}), file=f)
PY
train=(train --steps 4 --batch-size 4 --max-length 16 --eps 1e-3 --lr 1e-4 --progress log --threads 1)
for kernels in SkylakeX Cooperlake; do
  export OPENBLAS_CORETYPE=$kernels
  for arch in "$@"; do
    [ -d "m-$arch" ] || "$Z" init --arch "$arch" --preset tiny --out "m-$arch" >/dev/null
    for data in ragged even; do
      "$Z" "${train[@]}" --data $data.jsonl --model "m-$arch" --out "one-$arch-$kernels-$data" 2>/dev/null
    done
    mpi 2 "$Z" "${train[@]}" --data ragged.jsonl --model "m-$arch" --out "two-$arch-$kernels" --data-parallel 2 2>/dev/null
    cmp "one-$arch-$kernels-ragged/model.safetensors" "two-$arch-$kernels/model.safetensors" ||
      die "$arch, $kernels: 2 data-parallel ranks left the single process"
    cmp "one-$arch-$kernels-ragged/updates.jsonl" "two-$arch-$kernels/updates.jsonl" ||
      die "$arch, $kernels: 2 data-parallel ranks logged other updates"
    for data in ragged even; do
      mpi 4 "$Z" "${train[@]}" --data $data.jsonl --model "m-$arch" --out "four-$arch-$kernels-$data" --data-parallel 4 2>/dev/null
      cmp "one-$arch-$kernels-$data/model.safetensors" "four-$arch-$kernels-$data/model.safetensors" ||
        die "$arch, $kernels, $data: 4 data-parallel ranks left the single process"
      cmp "one-$arch-$kernels-$data/updates.jsonl" "four-$arch-$kernels-$data/updates.jsonl" ||
        die "$arch, $kernels, $data: 4 data-parallel ranks logged other updates"
    done
  done
done
echo "data parallelism byte-identical: $* x SkylakeX, Cooperlake"
