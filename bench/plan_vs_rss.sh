#!/usr/bin/env bash
# The memory plan (--dry-run) against measured peak RSS on the presets, per tier:
# each row is one `zotune bench` process (its JSON has planned_peak_rss_mb and
# peak_rss_mb side by side), then the bf16/fp32 peak ratio per preset.
#   bash bench/plan_vs_rss.sh [PRESETS...]     (default: all but llama-3.2-1b)
# Models are random-initialised presets under $ZOTUNE_BENCH_DIR (default /tmp/zotune-presets).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${ZOTUNE_BENCH_DIR:-/tmp/zotune-presets}
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(gpt2:tiny gpt2:gpt2-124m opt:opt-125m qwen3:qwen3-0.6b)
B=${B:-1} T=${T:-32}
for p in "${presets[@]}"; do
  arch=${p%%:*} preset=${p#*:}
  model="$dir/$arch-$preset"
  [ -f "$model/config.json" ] || build/zotune init --arch "$arch" --preset "$preset" --seed 1 --out "$model" >/dev/null
  for tier in "--offload none" "--offload ram --storage-dtype bf16" "--offload disk --storage-dtype bf16"; do
    build/zotune bench --model "$model" --batch-size "$B" --seq-len "$T" --steps 2 --threads 2 $tier | sed "s|^{|{\"preset\":\"$preset\",|"
  done
done | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
print("%-12s %-5s %-5s %12s %12s %7s" % ("preset", "tier", "dtype", "planned MB", "measured MB", "ratio"))
worst = 0
for r in rows:
    ratio = r["planned_peak_rss_mb"] / r["peak_rss_mb"]
    worst = max(worst, abs(ratio - 1))
    print("%-12s %-5s %-5s %12.1f %12.1f %7.3f" % (r["preset"], r["offload"], r["storage_dtype"],
          r["planned_peak_rss_mb"], r["peak_rss_mb"], ratio))
print("worst |planned/measured - 1| = %.3f" % worst)
for p in dict.fromkeys(r["preset"] for r in rows):
    f = [r["peak_rss_mb"] for r in rows if r["preset"] == p and r["offload"] == "none"]
    b = [r["peak_rss_mb"] for r in rows if r["preset"] == p and r["offload"] == "ram"]
    if f and b: print("%s: bf16 RAM / fp32 RAM peak RSS = %.3f" % (p, b[0] / f[0]))'
