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
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"$Z" init --arch gpt2 --preset tiny --out tiny >/dev/null
"$Z" init --arch gpt2 --preset gpt2-124m --out big >/dev/null
bench=(bench --batch-size 4 --seq-len 8 --steps 1 --threads 1)
# Every rank sends the plan's bytes (per direction a header and its loss
# terms: 4 sequences of 8 tokens, 7 scored each), and the per-node RSS is the
# sum of the ranks'.
check() {
  python3 - "$@" <<'PY'
import json, sys
for p in sys.argv[1:]:
    r = json.load(open(p))
    assert r["ranks"] == 2 and len(r["bytes_sent_per_step_ranks"]) == 2, r
    assert len(r["peak_rss_mb_ranks"]) == 2 and r["nodes"] == 1, r
    assert abs(r["peak_rss_mb_nodes"][0] - sum(r["peak_rss_mb_ranks"])) < 1e-9, r
    for sent in r["bytes_sent_per_step_ranks"]:
        assert sent == r["planned_bytes_per_rank_per_step"] > 0, (p, sent, r["planned_bytes_per_rank_per_step"])
    print("%s: %d bytes per rank per step, %d parameters" % (p, r["bytes_sent_per_rank_per_step"], r["parameters"]))
PY
}
mpi 2 "$Z" "${bench[@]}" --model tiny --data-parallel 2 > tiny-ddp.json
mpi 2 "$Z" "${bench[@]}" --model tiny --pert-parallel 2 > tiny-pertp.json
mpi 2 "$Z" "${bench[@]}" --model tiny --directions 2 --direction-groups 2 > tiny-groups.json
check tiny-ddp.json tiny-pertp.json tiny-groups.json || die "bytes per step are not the plan's"
# The same batch on gpt2-124m (over 800x the parameters): the same bytes.
mpi 2 "$Z" "${bench[@]}" --model big --data-parallel 2 > big-ddp.json
check big-ddp.json || die "bytes per step on gpt2-124m are not the plan's"
python3 - tiny-ddp.json big-ddp.json <<'PY' || die "bytes per step depend on the model"
import json, sys
t, b = (json.load(open(p)) for p in sys.argv[1:])
assert t["parameters"] * 800 < b["parameters"], (t["parameters"], b["parameters"])
assert t["bytes_sent_per_rank_per_step"] == b["bytes_sent_per_rank_per_step"], (t["bytes_sent_per_rank_per_step"], b["bytes_sent_per_rank_per_step"])
PY
echo "bench bytes: ok"
