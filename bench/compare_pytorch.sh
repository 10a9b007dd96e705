#!/usr/bin/env bash
# zotune bench vs the PyTorch MeZO-SGD baseline on the same gpt2-124m preset,
# batch 4 x 128, 2 threads, interleaved (zotune, torch, zotune, torch).
#   bash bench/compare_pytorch.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
model=${ZOTUNE_BENCH_MODEL:-/tmp/zotune-gpt2-124m}
[ -f "$model/config.json" ] || build/zotune init --arch gpt2 --preset gpt2-124m --seed 1 --out "$model" >/dev/null
for i in $(seq "$rounds"); do
  build/zotune bench --model "$model" --batch-size 4 --seq-len 128 --steps 5 --threads 2
  OMP_WAIT_POLICY=passive /usr/bin/python3 bench/pytorch_mezo_baseline.py --model "$model" --steps 3 --threads 2
done | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
z = [r["sec_per_step_median"] for r in rows if "impl" not in r]
t = [r["sec_per_step_median"] for r in rows if r.get("impl") == "pytorch-mezo"]
zf = [r["forward_sec_median"] for r in rows if "impl" not in r]
print("zotune  sec/step %s  forward %s" % (z, zf))
print("pytorch sec/step %s" % t)
print("zotune %.3f s/step (%.0f tok/s), step/forward %.2f; pytorch %.3f s/step (%.0f tok/s); speed-up %.2fx" % (
    statistics.median(z), 512 / statistics.median(z), statistics.median(z) / statistics.median(zf),
    statistics.median(t), 512 / statistics.median(t), statistics.median(t) / statistics.median(z)))'
