#!/usr/bin/env bash
# The disk tier under a memory budget of one third of the model's fp32 size:
# `zotune bench --memory-budget` picks the tier; overlap on and off (same tier)
# run interleaved (on off on off ...) and the medians are compared with
# max(compute, io) of the same runs.
#   bash bench/disk_budget.sh [ARCH:PRESET] [ROUNDS]     (default opt:opt-125m 2)
set -euo pipefail
cd "$(dirname "$0")/.."
p=${1:-opt:opt-125m}
rounds=${2:-2}
arch=${p%%:*} preset=${p#*:}
dir=${ZOTUNE_BENCH_DIR:-/tmp/zotune-presets}
model="$dir/$arch-$preset"
[ -f "$model/config.json" ] || build/zotune init --arch "$arch" --preset "$preset" --seed 1 --out "$model" >/dev/null
params=$(build/zotune inspect --model "$model" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["parameters"])')
budget=$((params * 4 / 3))
echo "model $model: $params parameters, fp32 $((params * 4 / 1048576)) MiB, budget $((budget / 1048576)) MiB" >&2
run() { build/zotune bench --model "$model" --batch-size "${B:-4}" --seq-len "${T:-128}" --threads 2 "$@"; }
# The budget picks the tier with overlap on; overlap off runs that same tier.
tier=$(run --steps 1 --memory-budget "$budget" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("--offload %s --storage-dtype %s --resident-blocks %d" % (d["offload"], d["storage_dtype"].lower(), d["resident_blocks"]))')
echo "picked: $tier" >&2
for i in $(seq "$rounds"); do
  run --steps "${STEPS:-3}" --memory-budget "$budget" --overlap on
  run --steps "${STEPS:-3}" $tier --overlap off
done | python3 -c '
import json, statistics, sys
budget = int(sys.argv[1]) / 1048576
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
for ov in (True, False):
    rs = [r for r in rows if r["overlap"] == ov]
    if not rs: continue
    med = lambda k: statistics.median(r[k] for r in rs)
    s, c, io = med("sec_per_step_median"), med("compute_sec_per_step"), med("io_sec_per_step")
    print("overlap %-3s: %s %s K=%d  sec/step %.3f  compute %.3f  io %.3f  sec/max(compute,io) %.3f  disk %.0f MB/s  peak RSS %.1f MiB (budget %.1f, %.2fx; planned %.1f)" % (
        "on" if ov else "off", rs[0]["offload"], rs[0]["storage_dtype"], rs[0]["resident_blocks"], s, c, io,
        s / max(c, io), med("disk_mb_per_s"), max(r["peak_rss_mb"] for r in rs), budget,
        max(r["peak_rss_mb"] for r in rs) / budget, med("planned_peak_rss_mb")))
on = [r["sec_per_step_median"] for r in rows if r["overlap"]]
off = [r["sec_per_step_median"] for r in rows if not r["overlap"]]
if on and off: print("overlap off / on: %.2fx" % (statistics.median(off) / statistics.median(on)))' "$budget"
