#!/usr/bin/env bash
# Performance regression guard (issue 10): for the gpt2-124m preset on random
# tokens (4 x 128) and on the built-in sentiment task (examples/sentiment, 2
# candidates per example, batch 32, max length 64, GPT-2 tokenizer), prints
# forward / FMA peak, step / forward, tokens/s and peak RSS from `zotune bench`
# (no environment variables: the kernels zotune picks by itself). Runs the two
# cases interleaved ROUNDS times and prints medians and the spread; the load
# average is printed too, since a shared machine moves every figure.
#   bash bench/perf_guard.sh [ROUNDS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
threads=${2:-2}
tok=${ZOTUNE_TOKENIZER_DATA:-.cache/tokenizer-data}/gpt2
model=${ZOTUNE_GUARD_MODEL:-${TMPDIR:-/tmp}/zotune-guard-gpt2-124m}
[ -f "$model/config.json" ] ||
  build/zotune init --arch gpt2 --preset gpt2-124m --tokenizer "$tok" --seed 1 --out "$model" >/dev/null
for i in $(seq "$rounds"); do
  echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE -u OMP_WAIT_POLICY build/zotune bench --model "$model" \
    --batch-size 4 --seq-len 128 --steps 3 --threads "$threads" | sed 's/^{/{"case": "gpt2-124m lm 4x128", /'
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE -u OMP_WAIT_POLICY build/zotune bench --model "$model" \
    --data examples/sentiment/train.jsonl --batch-size 32 --seq-len 64 --steps 3 --threads "$threads" |
    sed 's/^{/{"case": "gpt2-124m sentiment 32x64", /'
done | python3 -c '
import json, statistics, sys
rows, loads = {}, []
for l in sys.stdin:
    if l.startswith("load"): loads.append(l.split()[1]); continue
    if l.startswith("{"):
        r = json.loads(l); rows.setdefault(r["case"], []).append(r)
print("load averages at the start of each round: %s" % ", ".join(loads))
for case, rs in rows.items():
    def fig(key):
        v = [r[key] for r in rs]
        return "%.3g [%.3g..%.3g]" % (statistics.median(v), min(v), max(v))
    print("%s (%d rounds, gemm %s, %d threads)" % (case, len(rs), rs[0]["gemm"], rs[0]["threads"]))
    print("  forward / FMA peak   %s   (forward %s GFLOP/s, FMA peak %s GFLOP/s)" % (fig("forward_over_fma_peak"), fig("forward_gflops"), fig("fma_peak_gflops")))
    print("  forward / sgemm peak %s" % fig("forward_over_sgemm_peak"))
    print("  step / forward       %s   (step %s s, forward %s s)" % (fig("step_over_forward"), fig("sec_per_step_median"), fig("forward_sec_median")))
    print("  tokens/s             %s" % fig("tokens_per_sec"))
    print("  peak RSS             %s MB" % fig("peak_rss_mb"))'
