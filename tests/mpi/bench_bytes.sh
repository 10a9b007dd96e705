#!/usr/bin/env bash
# Bytes a rank sends per step (issue #12): `zotune bench` under mpirun counts
# what each rank puts into the collectives of a step (Comm::counters). They are
# loss terms and a header, never tensors: the same on the tiny preset and on
# gpt2-124m (1000x the parameters) for the same batch, and equal to the cluster
# plan's figure (train/layout_plan.h), for data parallelism, perturbation
# parallelism and K = 2 directions over 2 groups.
# Usage: bench_bytes.sh ZOTUNE_BINARY
set -euo pipefail
Z=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export OMPI_MCA_btl=self,vader OMPI_MCA_plm_rsh_agent= OMPI_MCA_rmaps_base_oversubscribe=1
mpi() { timeout 120 mpirun --allow-run-as-root --oversubscribe -np "$@"; }
die() { echo "FAIL: $*" >&2; exit 1; }

"$Z" init --arch gpt2 --preset tiny --out tiny >/dev/null
"$Z" init --arch gpt2 --preset gpt2-124m --out big >/dev/null
bench=(bench --batch-size 4 --seq-len 8 --steps 1 --threads 1)
for layout in "--data-parallel 2" "--pert-parallel 2" "--directions 2 --direction-groups 2"; do
  for m in tiny big; do
    # shellcheck disable=SC2086
    mpi 2 "$Z" "${bench[@]}" --model "$m" $layout > "$m.json"
  done
  python3 - "$layout" tiny.json big.json <<'PY' || die "$layout"
import json, sys
layout = sys.argv[1]
t, b = (json.load(open(p)) for p in sys.argv[2:])
assert t["parameters"] * 1000 < b["parameters"], (t["parameters"], b["parameters"])
for r in (t, b):
    assert r["ranks"] == 2 and len(r["bytes_sent_per_step_ranks"]) == 2, r
    assert len(r["peak_rss_mb_ranks"]) == 2 and r["nodes"] == 1, r
    assert abs(r["peak_rss_mb_nodes"][0] - sum(r["peak_rss_mb_ranks"])) < 1e-9, r
    # Every rank sends the plan's bytes: per direction a header and its loss terms.
    for sent in r["bytes_sent_per_step_ranks"]:
        assert sent == r["planned_bytes_per_rank_per_step"] > 0, (sent, r["planned_bytes_per_rank_per_step"])
assert t["bytes_sent_per_rank_per_step"] == b["bytes_sent_per_rank_per_step"], (t["bytes_sent_per_rank_per_step"], b["bytes_sent_per_rank_per_step"])
# 4 sequences of 8 tokens: 7 scored tokens each.
print("%s: %d bytes per rank per step on %d and %d parameters" % (layout, t["bytes_sent_per_rank_per_step"], t["parameters"], b["parameters"]))
PY
done
