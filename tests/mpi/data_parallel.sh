#!/usr/bin/env bash
# Data and perturbation parallelism under Open MPI on localhost (issue #12),
# for every architecture ARCH given: `mpirun -np 2 zotune train ...
# --data-parallel 2`, `--pert-parallel 2` and 2D on 4 ranks against the single
# process on the same global batch.
# Usage: data_parallel.sh ZOTUNE_BINARY ARCH...
set -euo pipefail
Z=$(realpath "$1"); shift
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

python3 - <<'PY' > data.jsonl
import json, random
random.seed(7)
for i in range(24):
    print(json.dumps({"input_ids": [random.randrange(0, 200) for _ in range(random.randrange(5, 17))]}))
PY
# Losses and g of two runs' metrics.jsonl: equal within a relative 1e-6 (see
# docs/architecture.md, "Processes": per-row results depend on the rows that
# share a matrix product, so a split batch is not bit-identical).
close() {
  python3 - "$1" "$2" <<'PY'
import json, sys
def rows(p):
    return [r for r in map(json.loads, open(p)) if r["type"] == "train"]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
assert len(a) == len(b) == 4, (len(a), len(b))
for x, y in zip(a, b):
    assert x["tokens"] == y["tokens"], (x["tokens"], y["tokens"])
    tol = 1e-6 * max(1.0, abs(x["loss_plus"]))
    for k in ("loss_plus", "loss_minus"):
        assert abs(x[k] - y[k]) <= tol, (k, x["step"], x[k], y[k])
    # g = (L+ - L-) / (2 eps), eps = 1e-3: each loss's error over 2 eps.
    assert abs(x["projected_grad"] - y["projected_grad"]) <= tol / 1e-3, (x["step"], x["projected_grad"], y["projected_grad"])
print("close:", len(a), "steps")
PY
}
train=(train --data data.jsonl --steps 4 --batch-size 4 --max-length 16 --eps 1e-3 --lr 1e-4 --progress log)

for arch in "$@"; do
  "$Z" init --arch "$arch" --preset tiny --out "m-$arch" >/dev/null
  "$Z" "${train[@]}" --model "m-$arch" --out "one-$arch" --threads 1 2>/dev/null
  mpi 2 "$Z" "${train[@]}" --model "m-$arch" --out "two-$arch" --data-parallel 2 --threads 1 2> "two-$arch.log"
  mpi 2 "$Z" "${train[@]}" --model "m-$arch" --out "again-$arch" --data-parallel 2 --threads 1 2>/dev/null
  # The same layout twice: byte-identical (the reduction is in a fixed order).
  cmp "two-$arch/model.safetensors" "again-$arch/model.safetensors" || die "$arch: two 2-rank runs differ"
  close "one-$arch/metrics.jsonl" "two-$arch/metrics.jsonl" || die "$arch: 2 ranks left the single-process trajectory"
  # Rank 0 alone writes and logs: the same files as the single process, one header line.
  [ "$(ls "one-$arch")" = "$(ls "two-$arch")" ] || die "$arch: output files differ: $(ls "two-$arch")"
  [ "$(grep -c '^zotune train: done' "two-$arch.log")" = 1 ] || die "$arch: not exactly one rank logged"
  # Perturbation parallelism: a pair of ranks runs the two passes of the same
  # batch, so every row sees the single process's shapes: byte-identical.
  mpi 2 "$Z" "${train[@]}" --model "m-$arch" --out "pp-$arch" --pert-parallel 2 --threads 1 2>/dev/null
  cmp "one-$arch/model.safetensors" "pp-$arch/model.safetensors" || die "$arch: --pert-parallel 2 left the single process"
  cmp "one-$arch/updates.jsonl" "pp-$arch/updates.jsonl" || die "$arch: --pert-parallel 2 logged other updates"
  # 2D: 2 data slices x 2 halves on 4 ranks = the 2-rank data-parallel run, byte for byte.
  mpi 4 "$Z" "${train[@]}" --model "m-$arch" --out "pd-$arch" --pert-parallel 2 --data-parallel 2 --threads 1 2>/dev/null
  cmp "two-$arch/model.safetensors" "pd-$arch/model.safetensors" || die "$arch: 2D left the 2-rank data-parallel run"
done

arch=$1
# Only rank 0 writes: nothing else appeared in the working directory.
ls -A | grep -v -E '^(data\.jsonl|m-|one-|two-|again-|pp-|pd-)' && die "a rank wrote outside --out"
# 3 ranks do not split a batch of 4: a clear error from every rank, no hang.
if mpi 3 "$Z" "${train[@]}" --model "m-$arch" --out three --data-parallel 3 2> three.log; then die "-np 3 with batch 4 ran"; fi
grep -q 'does not split over 3 data-parallel ranks' three.log || die "-np 3: unclear error: $(cat three.log)"
[ ! -e three/model.safetensors ] || die "-np 3 wrote a model"
# The layout must match the launch.
if "$Z" "${train[@]}" --model "m-$arch" --out x1 --data-parallel 2 2> x1.log; then die "--data-parallel 2 ran in 1 process"; fi
grep -q 'needs 2 processes: run it as mpirun -np 2' x1.log || die "1 process: unclear error: $(cat x1.log)"
if mpi 2 "$Z" "${train[@]}" --model "m-$arch" --out x2 2> x2.log; then die "-np 2 without --data-parallel ran"; fi
grep -q 'the launcher started 2 processes' x2.log || die "-np 2: unclear error: $(cat x2.log)"
if mpi 2 "$Z" "${train[@]}" --model "m-$arch" --out x3 --pert-parallel 2 --one-sided 2> x3.log; then die "--pert-parallel 2 --one-sided ran"; fi
grep -q 'one-sided has one' x3.log || die "--one-sided: unclear error: $(cat x3.log)"
if "$Z" "${train[@]}" --model "m-$arch" --out x4 --pert-parallel 2 2> x4.log; then die "--pert-parallel 2 ran in 1 process"; fi
grep -q 'needs 2 processes' x4.log || die "pert 1 process: unclear error: $(cat x4.log)"
# A rank that fails (rank 0 refuses an --out it does not own) ends the job with its message.
mkdir theirs && echo mine > theirs/notes.txt
if mpi 2 "$Z" "${train[@]}" --model "m-$arch" --out theirs --data-parallel 2 2> own.log; then die "ran into a foreign --out"; fi
grep -q 'zotune: error (rank 0 of 2)' own.log || die "no rank-0 abort message: $(cat own.log)"
[ "$(cat theirs/notes.txt)" = mine ] || die "the user's file changed"
# bench under mpirun: one JSON line from rank 0.
mpi 2 "$Z" bench --model "m-$arch" --batch-size 2 --seq-len 8 --steps 2 --data-parallel 2 --threads 1 > bench.json 2>/dev/null
python3 -c "import json,sys; l=open('bench.json').read().splitlines(); assert len(l)==1, l; j=json.loads(l[0]); assert j['data_parallel']==2 and j['tokens_per_sec']>0, j"
echo "data_parallel: ok ($*)"
