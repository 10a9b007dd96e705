#!/usr/bin/env bash
# The compute backends end to end (issue 10 item 3): `zotune bench` on one
# model with ZOTUNE_GEMM=openblas and ZOTUNE_GEMM=onednn, interleaved A B A B
# PAIRS times, no other environment settings; prints the load average, then per
# backend the median [min..max] step and forward time, and the ratios.
#   bash bench/gemm_ab.sh MODEL_DIR [PAIRS] [THREADS] [BATCH] [SEQ_LEN]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bench/gemm_ab.sh MODEL_DIR [PAIRS] [THREADS] [BATCH] [SEQ_LEN]}
pairs=${2:-4}
threads=${3:-2}
batch=${4:-4}
seq=${5:-128}
for i in $(seq "$pairs"); do
  echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
  for gemm in openblas onednn; do
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE -u OMP_WAIT_POLICY ZOTUNE_GEMM=$gemm build/zotune bench \
      --model "$model" --batch-size "$batch" --seq-len "$seq" --steps 3 --threads "$threads" |
      sed "s/^{/{\"backend\": \"$gemm\", /"
  done
done | python3 -c '
import json, statistics, sys
rows, loads = {}, []
for l in sys.stdin:
    if l.startswith("load"): loads.append(l.split()[1]); continue
    if l.startswith("{"):
        r = json.loads(l); rows.setdefault(r["backend"], []).append(r)
print("load averages at the start of each pair: %s" % ", ".join(loads))
med = {}
for b, rs in rows.items():
    def fig(key):
        v = [r[key] for r in rs]
        return statistics.median(v), "%.3g [%.3g..%.3g]" % (statistics.median(v), min(v), max(v))
    med[b] = {k: fig(k)[0] for k in ("sec_per_step_median", "forward_sec_median")}
    print("%-8s (%s, %d runs): step %s s, forward %s s, forward/FMA peak %s" % (b, rs[0]["gemm"], len(rs),
          fig("sec_per_step_median")[1], fig("forward_sec_median")[1], fig("forward_over_fma_peak")[1]))
if len(med) == 2:
    print("openblas / onednn: step %.3f, forward %.3f (>1: onednn faster)" % (
        med["openblas"]["sec_per_step_median"] / med["onednn"]["sec_per_step_median"],
        med["openblas"]["forward_sec_median"] / med["onednn"]["forward_sec_median"]))
'
