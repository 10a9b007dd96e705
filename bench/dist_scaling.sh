#!/usr/bin/env bash
# The scaling table of issue #12 on one machine: `zotune bench` on a model
# (default: the gpt2-124m preset of bench/perf_guard.sh) as
#   1x1      1 rank x 1 thread            (the reference)
#   1x2      1 rank x 2 threads
#   1x1@cN   1x1 pinned to core N (taskset; cores 0 and 1): the cores of a
#            VM can differ in speed, and ranks in lockstep (every step of DDP
#            and PertP ends in a collective) go at the slowest one's pace
#   pair     two independent 1x1 runs at once (no MPI): the machine's own
#            ceiling for two single-thread processes; tokens/s is their sum
#   ddp      2 ranks x 1 thread, --data-parallel 2 (one stored copy per node,
#            the default for ranks that share a node)
#   pertp    2 ranks x 1 thread, --pert-parallel 2 (the same)
#   *-own    the same two with --no-share-node-weights (a copy per rank)
#   2d       4 ranks x 1 thread, --data-parallel 2 --pert-parallel 2 (oversubscribed on 2 cores)
#   1x1-k2   1 rank x 1 thread, --directions 2 (the reference of the next)
#   groups   2 ranks x 1 thread, --directions 2 --direction-groups 2
# run in interleaved rounds (every case once per round, so machine noise hits
# all of them), then medians of tokens/s (the global batch's), sec/step, bytes
# sent per rank per step and peak RSS per rank and per node, with ratios
# against 1x1 (groups against 1x1-k2) and of the 2-rank cases against pair,
# and the bytes per step of the tiny
# preset beside the model's (they do not depend on model size).
#   bash bench/dist_scaling.sh [ROUNDS] [MODEL_DIR]
# BATCH (default 4), SEQ (64) and STEPS (2) set each bench run; CASES (a
# space-separated list of the names above, default all) picks cases (1x1 is
# always run); RAW=FILE keeps every run's JSON line. The load average is
# printed, since on a shared machine it moves every figure, and so are the
# round-by-round ratios of the 2-rank cases to 1x1.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
Z=$PWD/build/zotune
tok=${ZOTUNE_TOKENIZER_DATA:-.cache/tokenizer-data}/gpt2
model=${2:-${ZOTUNE_GUARD_MODEL:-${TMPDIR:-/tmp}/zotune-guard-gpt2-124m}}
tiny=${TMPDIR:-/tmp}/zotune-dist-tiny
[ -f "$model/config.json" ] ||
  "$Z" init --arch gpt2 --preset gpt2-124m --tokenizer "$tok" --seed 1 --out "$model" >/dev/null
[ -f "$tiny/config.json" ] || "$Z" init --arch gpt2 --preset tiny --seed 1 --out "$tiny" >/dev/null
export OMPI_MCA_btl=self,vader OMPI_MCA_plm_rsh_agent= OMPI_MCA_rmaps_base_oversubscribe=1
args=(--batch-size "${BATCH:-4}" --seq-len "${SEQ:-64}" --steps "${STEPS:-2}")
mpi() { mpirun --allow-run-as-root --oversubscribe -np "$@"; }
run() {  # CASE NP THREADS MODEL [FLAGS...]
  local case=$1 np=$2 threads=$3 m=$4; shift 4
  if [ "$np" = 1 ]; then
    ${PIN:+taskset -c "$PIN"} "$Z" bench --model "$m" "${args[@]}" --threads "$threads" "$@"
  else
    mpi "$np" "$Z" bench --model "$m" "${args[@]}" --threads "$threads" "$@"
  fi | sed "s/^{/{\"case\": \"$case\", /"
}
# pair: two 1x1 runs at once, one JSON line: the sum of their tokens/s, the
# slower one's sec/step.
pair() {
  local a b
  a=$(mktemp) b=$(mktemp)
  run pair 1 1 "$model" > "$a" & run pair 1 1 "$model" > "$b"
  wait
  python3 - "$a" "$b" <<'PY'
import json, sys
x, y = (json.loads(open(p).read().splitlines()[-1]) for p in sys.argv[1:])
x["tokens_per_sec"] += y["tokens_per_sec"]
x["sec_per_step_median"] = max(x["sec_per_step_median"], y["sec_per_step_median"])
x["ranks"] = 2
x["peak_rss_mb_nodes"] = [x["peak_rss_mb_nodes"][0] + y["peak_rss_mb_nodes"][0]]
print(json.dumps(x))
PY
  rm -f "$a" "$b"
}
cases=" ${CASES:-1x2 1x1@c0 1x1@c1 pair ddp pertp ddp-own pertp-own 2d 1x1-k2 groups tiny-ddp} "
want() { [[ $cases == *" $1 "* ]]; }
for i in $(seq "$rounds"); do
  echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
  run 1x1 1 1 "$model"
  ! want 1x2 || run 1x2 1 2 "$model"
  for c in 0 1; do
    if want "1x1@c$c" && taskset -c "$c" true 2>/dev/null; then PIN=$c run "1x1@c$c" 1 1 "$model"; fi
  done
  ! want pair || pair
  ! want ddp || run ddp 2 1 "$model" --data-parallel 2
  ! want pertp || run pertp 2 1 "$model" --pert-parallel 2
  ! want ddp-own || run ddp-own 2 1 "$model" --data-parallel 2 --no-share-node-weights
  ! want pertp-own || run pertp-own 2 1 "$model" --pert-parallel 2 --no-share-node-weights
  ! want 2d || run 2d 4 1 "$model" --data-parallel 2 --pert-parallel 2
  ! want 1x1-k2 || run 1x1-k2 1 1 "$model" --directions 2
  ! want groups || run groups 2 1 "$model" --directions 2 --direction-groups 2
  ! want tiny-ddp || run tiny-ddp 2 1 "$tiny" --data-parallel 2
done | tee "${RAW:-/dev/null}" | python3 -c '
import json, statistics, sys
rows, loads = {}, []
for l in sys.stdin:
    if l.startswith("load"): loads.append(l.split()[1]); continue
    if l.startswith("{"):
        r = json.loads(l); rows.setdefault(r["case"], []).append(r)
med = lambda case, key: statistics.median(r[key] for r in rows[case])
print("load averages at the start of each round: %s" % ", ".join(loads))
r0 = rows["1x1"][0]
print("model %s: %d parameters, batch %d x %d, %d steps per run, %d rounds" % (r0["model"], r0["parameters"],
      r0["batch_size"], r0["seq_len"], r0["steps"], len(rows["1x1"])))
print("%-9s %5s %7s %10s %8s %9s %8s %11s %11s %10s" % ("case", "ranks", "threads", "tokens/s", "x 1x1", "s/step",
      "planned", "bytes/step", "RSS/rank", "RSS/node"))
for case in rows:
    if case.startswith("tiny"): continue
    ref = "1x1-k2" if case == "groups" else "1x1"
    if ref not in rows: continue
    rss = max(max(r["peak_rss_mb_ranks"]) for r in rows[case])
    node = max(max(r["peak_rss_mb_nodes"]) for r in rows[case])
    print("%-9s %5d %7d %10.1f %8.2f %9.3f %8.3f %11d %8.0f MB %7.0f MB" % (case, rows[case][0]["ranks"],
          rows[case][0]["threads"], med(case, "tokens_per_sec"), med(case, "tokens_per_sec") / med(ref, "tokens_per_sec"),
          med(case, "sec_per_step_median"), med(case, "planned_sec_per_step"), med(case, "bytes_sent_per_rank_per_step"), rss, node))
pinned = [c for c in ("1x1@c0", "1x1@c1") if c in rows]
slow = min(pinned, key=lambda c: med(c, "tokens_per_sec")) if pinned else None
if len(pinned) == 2:
    print("core speed, 1x1 tokens/s: core 0 / core 1 = %.2f" % (med("1x1@c0", "tokens_per_sec") / med("1x1@c1", "tokens_per_sec")))
for case in ("ddp", "pertp", "ddp-own", "pertp-own"):
    if case in rows and slow:
        print("%s (2x1) / %s (1x1 on the slower core: the pace of ranks in lockstep) tokens/s: %.2f" % (
              case, slow, med(case, "tokens_per_sec") / med(slow, "tokens_per_sec")))
    if case in rows and "1x2" in rows:
        print("%s (2x1) / 1x2 tokens/s: %.2f" % (case, med(case, "tokens_per_sec") / med("1x2", "tokens_per_sec")))
    if case in rows and "pair" in rows:
        print("%s (2x1) / pair (two independent processes: the machine ceiling) tokens/s: %.2f" % (
              case, med(case, "tokens_per_sec") / med("pair", "tokens_per_sec")))
for case in ("1x2", "pair", "ddp", "pertp", "ddp-own", "pertp-own"):
    if case in rows and len(rows[case]) == len(rows["1x1"]):
        print("%s / 1x1 tokens/s, round by round: %s" % (case, " ".join("%.2f" % (r["tokens_per_sec"] / b["tokens_per_sec"])
              for r, b in zip(rows[case], rows["1x1"]))))
if "tiny-ddp" not in rows or "ddp" not in rows: sys.exit(0)
t = rows["tiny-ddp"][0]
print("bytes per rank per step, --data-parallel 2: %d on the tiny preset (%d parameters), %d on the model (%d parameters)" % (
      med("tiny-ddp", "bytes_sent_per_rank_per_step"), t["parameters"], med("ddp", "bytes_sent_per_rank_per_step"), r0["parameters"]))'
