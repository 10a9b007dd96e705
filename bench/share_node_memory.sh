#!/usr/bin/env bash
# Node memory with one stored θ per node (the default for several ranks on a
# node, --share-node-weights) and with one per rank (--no-share-node-weights;
# issue #12): the gpt2-124m
# preset under `zotune bench`, 1 rank against 2 data-parallel ranks on this
# node. Node memory is the sum of the ranks' proportional set sizes (Pss of
# /proc/PID/smaps_rollup: a page mapped by n processes counts 1/n in each, so
# the shared weights count once), sampled every 50 ms; the peak is reported
# with each rank's peak RSS (which counts the shared pages in full).
# Usage: bench/share_node_memory.sh [ZOTUNE_BINARY]   (prints one JSON line per case)
set -euo pipefail
Z=$(realpath "${1:-build/zotune}")
model=${ZOTUNE_SHARE_MODEL:-${TMPDIR:-/tmp}/zotune-share-gpt2-124m}
[ -f "$model/model.safetensors" ] || "$Z" init --arch gpt2 --preset gpt2-124m --seed 1 --out "$model" >/dev/null
export OMPI_MCA_btl=self,vader OMPI_MCA_plm_rsh_agent= OMPI_MCA_rmaps_base_oversubscribe=1
bench=(bench --model "$model" --batch-size ${B:-4} --seq-len ${T:-64} --steps 2 --threads 1)

# measure NAME NP FLAGS...: runs the case, samples its ranks, prints a JSON line.
measure() {
  local name=$1 np=$2; shift 2
  local out; out=$(mktemp)
  if [ "$np" = 1 ]; then "$Z" "${bench[@]}" "$@" > "$out" 2>/dev/null &
  else mpirun --allow-run-as-root --oversubscribe -np "$np" "$Z" "${bench[@]}" --data-parallel "$np" "$@" > "$out" 2>/dev/null &
  fi
  local launcher=$! peak_node=0 peak_rss="" pids
  declare -A rss
  while kill -0 "$launcher" 2>/dev/null; do
    pids=$(pgrep -f "^$Z bench --model $model" || true)
    local node=0
    for p in $pids; do
      local pss r
      pss=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
      r=$(awk '/^Rss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
      node=$((node + ${pss:-0}))
      [ "${r:-0}" -gt "${rss[$p]:-0}" ] && rss[$p]=$r
    done
    [ "$node" -gt "$peak_node" ] && peak_node=$node
    sleep 0.05
  done
  wait "$launcher"
  for p in "${!rss[@]}"; do peak_rss+="${peak_rss:+, }$((rss[$p] / 1024))"; done
  python3 - "$name" "$np" "$peak_node" "[$peak_rss]" "$out" <<'PY'
import json, sys
name, np, node_kb, rss, out = sys.argv[1:]
b = json.loads(open(out).read().splitlines()[0])
print(json.dumps({"case": name, "ranks": int(np), "node_pss_peak_mb": round(int(node_kb) / 1024, 1),
                  "rank_rss_peak_mb": json.loads(rss), "tokens_per_sec": round(b["tokens_per_sec"], 1),
                  "sec_per_step": round(b["sec_per_step_median"], 3)}))
PY
  rm -f "$out"
}

for round in 1 2; do  # interleaved: A B C D A B C D
  measure "1 rank" 1
  measure "1 rank, shared" 1 --share-node-weights
  measure "2 ranks" 2 --no-share-node-weights
  measure "2 ranks, shared" 2 --share-node-weights
done
