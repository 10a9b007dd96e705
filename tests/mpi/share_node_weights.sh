#!/usr/bin/env bash
# One stored θ per node under Open MPI on localhost (issue #12): the ranks of
# a node keep one θ and update it together, block by block — the default when
# a node runs several ranks, and --share-node-weights. Every layout must end
# with the same bytes as the same layout with --no-share-node-weights (one copy
# per rank) — weights, update log and checkpoints — for every architecture ARCH
# given; one process with the flag (a node of one rank) equals the plain run.
# Usage: share_node_weights.sh ZOTUNE_BINARY ARCH...
set -euo pipefail
Z=$(realpath "$1"); shift
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

python3 - <<'PY'
import json, random
random.seed(11)
with open("data.jsonl", "w") as f:
    for i in range(24):
        f.write(json.dumps({"input_ids": [random.randrange(0, 200) for _ in range(random.randrange(5, 17))]}) + "\n")
with open("eval.jsonl", "w") as f:
    for i in range(6):
        f.write(json.dumps({"input_ids": [random.randrange(0, 200) for _ in range(9)]}) + "\n")
PY
# Evaluations and checkpoints mid-run: rank 0 reads θ while the others go on.
train=(train --data data.jsonl --eval eval.jsonl --eval-every 2 --save-every 2 --steps 4 --batch-size 4 --max-length 16
       --eps 1e-3 --lr 1e-4 --progress log --threads 1)
# Two runs' outputs: the same final weights, update log, checkpoint and evaluations.
same() {
  cmp "$1/model.safetensors" "$2/model.safetensors" || die "$3: final weights differ"
  cmp "$1/updates.jsonl" "$2/updates.jsonl" || die "$3: update logs differ"
  cmp "$1/checkpoint-000002/model.safetensors" "$2/checkpoint-000002/model.safetensors" || die "$3: checkpoints differ"
  python3 - "$1/metrics.jsonl" "$2/metrics.jsonl" "$3" <<'PY'
import json, sys
def ev(p):
    return [(r["step"], r["loss"]) for r in map(json.loads, open(p)) if r["type"] == "eval"]
a, b = ev(sys.argv[1]), ev(sys.argv[2])
assert len(a) == 3 and a == b, (sys.argv[3], a, b)
PY
}
run() {  # run NP OUT ARGS...: one process for NP = 1, else mpirun -np NP
  local np=$1 out=$2; shift 2
  if [ "$np" = 1 ]; then "$Z" "${train[@]}" --model "$model" --out "$out" "$@" 2> "$out.log" || die "$out: $(tail -3 "$out.log")"
  else mpi "$np" "$Z" "${train[@]}" --model "$model" --out "$out" "$@" 2> "$out.log" || die "$out: $(tail -3 "$out.log")"; fi
}

first=$1
for arch in "$@"; do
  model="m-$arch"
  "$Z" init --arch "$arch" --preset tiny --out "$model" >/dev/null
  for layout in "dp2 --data-parallel 2" "pp2 --pert-parallel 2"; do
    tag=${layout%% *} layout=${layout#* }
    run 2 "$tag-$arch" $layout --no-share-node-weights
    run 2 "$tag-s-$arch" $layout  # the default: shared
    same "$tag-$arch" "$tag-s-$arch" "$arch $layout"
  done
  # 16-bit storage (stochastic rounding cut into the ranks' shares) with a
  # tied (gpt2) and an untied lm_head (llama: updated while streamed).
  if [ "$arch" = "$first" ] || [ "$arch" = llama ]; then
    run 2 "bf-$arch" --data-parallel 2 --offload ram --storage-dtype bf16 --no-share-node-weights
    run 2 "bf-s-$arch" --data-parallel 2 --offload ram --storage-dtype bf16 --share-node-weights
    same "bf-$arch" "bf-s-$arch" "$arch bf16"
  fi
done

model="m-$first"
# One process with the flag: a node of one rank (private memory), the plain run.
run 1 "one-$first"
run 1 "one-s-$first" --share-node-weights
same "one-$first" "one-s-$first" "$first 1 process"
model="m-$first"
# Directions over groups (two update terms per step) and 2D on 4 ranks.
run 2 dir --directions 2 --direction-groups 2 --no-share-node-weights
run 2 dir-s --directions 2 --direction-groups 2
same dir dir-s "$first --directions 2 --direction-groups 2"
run 4 pd --data-parallel 2 --pert-parallel 2 --no-share-node-weights
run 4 pd-s --data-parallel 2 --pert-parallel 2 --share-node-weights
same pd pd-s "$first 2D"
# fp16, one-sided, on the shared store.
run 2 h16 --data-parallel 2 --offload ram --storage-dtype fp16 --one-sided --no-share-node-weights
run 2 h16-s --data-parallel 2 --offload ram --storage-dtype fp16 --one-sided --share-node-weights
same h16 h16-s "$first fp16 one-sided"
# Resume from a shared run's step-2 checkpoint: the uninterrupted run's weights
# (--pert-parallel 2 is the single process's trajectory, so one process may go on).
"$Z" "${train[@]}" --model "$model" --out res1 --resume "pp2-s-$first/checkpoint-000002" --share-node-weights 2> res1.log ||
  die "resume in 1 process: $(tail -3 res1.log)"
cmp "one-$first/model.safetensors" res1/model.safetensors || die "resumed 1-process run left the trajectory"
mpi 2 "$Z" "${train[@]}" --model "$model" --out res2 --resume "dp2-s-$first/checkpoint-000002" --data-parallel 2 \
  --share-node-weights 2> res2.log || die "resume on 2 ranks: $(tail -3 res2.log)"
cmp "dp2-$first/model.safetensors" res2/model.safetensors || die "resumed 2-rank run left the 2-rank trajectory"
# The disk tier keeps its own working copy: a clear error before any work.
if "$Z" "${train[@]}" --model "$model" --out x --offload disk --share-node-weights 2> x.log; then die "disk + share ran"; fi
grep -q 'does not combine with --offload disk' x.log || die "disk + share: unclear error: $(cat x.log)"
[ ! -e x ] || die "disk + share created --out"
# bench says which it ran, in one JSON line: shared by default for two ranks
# on this node and with the flag; one copy per rank with --no-share-node-weights
# and in one process; both flags are a clear error before any work.
shares() {  # shares EXPECTED NP ARGS...
  local want=$1 np=$2; shift 2
  if [ "$np" = 1 ]; then "$Z" bench --model "$model" --batch-size 2 --seq-len 8 --steps 2 --threads 1 "$@" > bench.json 2>/dev/null
  else mpi "$np" "$Z" bench --model "$model" --batch-size 2 --seq-len 8 --steps 2 --data-parallel 2 --threads 1 "$@" \
    > bench.json 2>/dev/null; fi || die "bench $np $*"
  python3 -c "import json,sys; l=open('bench.json').read().splitlines(); assert len(l)==1, l; j=json.loads(l[0]); assert j['share_node_weights'] is (sys.argv[1]=='yes') and j['tokens_per_sec']>0, (sys.argv[2:], j)" "$want" "$np" "$@"
}
shares yes 2
shares yes 2 --share-node-weights
shares no 2 --no-share-node-weights
shares no 1
shares yes 1 --share-node-weights
if "$Z" bench --model "$model" --steps 1 --share-node-weights --no-share-node-weights 2> both.log; then die "both flags ran"; fi
grep -q 'excludes' both.log || die "both flags: unclear error: $(cat both.log)"
echo "share_node_weights: ok ($*)"
