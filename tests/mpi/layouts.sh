#!/usr/bin/env bash
# Layouts that must reproduce the single process bit for bit, resume across
# layouts, and a rank killed with SIGKILL (issue #12), on one architecture.
#  - --directions 2 in one process = over 2 direction groups = over a
#    perturbation pair, and `zotune replay` reproduces it.
#  - A checkpoint of a 2-rank run (pert pair, direction groups) resumed in one
#    process, and one of a single process resumed on 2 ranks, end at the
#    uninterrupted run's weights. Data parallelism resumes too, within the
#    tolerance of docs/architecture.md ("Processes").
#  - SIGKILL of one rank mid-run ends the job within KILL_BOUND seconds with
#    Open MPI's message naming the rank and signal; the last checkpoint is
#    intact and a resume in one process reaches the uninterrupted weights.
# Usage: layouts.sh ZOTUNE_BINARY ARCH
set -euo pipefail
Z=$(realpath "$1"); arch=$2
KILL_BOUND=${KILL_BOUND:-15}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
same() { cmp -s "$1/model.safetensors" "$2/model.safetensors" || die "$3: $1 and $2 differ"; }

python3 - <<'PY' > data.jsonl
import json, random
random.seed(11)
for i in range(32):
    print(json.dumps({"input_ids": [random.randrange(0, 200) for _ in range(random.randrange(5, 17))]}))
PY
"$Z" init --arch "$arch" --preset tiny --out m >/dev/null
train=(train --model m --data data.jsonl --batch-size 4 --max-length 16 --eps 1e-3 --lr 1e-4 --progress log --threads 1)

# --directions 2: one process, 2 direction groups, a perturbation pair; replay.
"$Z" "${train[@]}" --steps 4 --directions 2 --out k1 2>/dev/null
mpi 2 "$Z" "${train[@]}" --steps 4 --directions 2 --direction-groups 2 --out kg 2>/dev/null
mpi 2 "$Z" "${train[@]}" --steps 4 --directions 2 --pert-parallel 2 --out kp 2>/dev/null
same k1 kg "--direction-groups 2"
same k1 kp "--directions 2 --pert-parallel 2"
cmp -s k1/updates.jsonl kg/updates.jsonl || die "direction groups logged other updates"
python3 -c "
import json; r=[json.loads(l) for l in open('k1/updates.jsonl')][1:]
assert len(r)==4 and all(len(x['terms'])==2 for x in r), r"
"$Z" replay --model m --log k1/updates.jsonl --out krep >/dev/null
same k1 krep "replay of --directions 2"
if mpi 2 "$Z" "${train[@]}" --steps 2 --directions 3 --direction-groups 2 --out bad 2> bad.log; then die "3 directions over 2 groups ran"; fi
grep -q 'does not split over --direction-groups 2' bad.log || die "unclear error: $(cat bad.log)"

# Resume across layouts: checkpoint at step 3 of 6, continued elsewhere.
"$Z" "${train[@]}" --steps 6 --out u 2>/dev/null
"$Z" "${train[@]}" --steps 6 --directions 2 --out uk 2>/dev/null
ck=checkpoint-000003
mpi 2 "$Z" "${train[@]}" --steps 6 --save-every 3 --keep-checkpoints 2 --pert-parallel 2 --out p2 2>/dev/null
"$Z" "${train[@]}" --steps 6 --resume "p2/$ck" --out p2to1 2>/dev/null
same u p2to1 "pert pair -> 1 process"
"$Z" "${train[@]}" --steps 6 --save-every 3 --keep-checkpoints 2 --out s1 2>/dev/null
mpi 2 "$Z" "${train[@]}" --steps 6 --resume "s1/$ck" --pert-parallel 2 --out s1to2 2>/dev/null
same u s1to2 "1 process -> pert pair"
mpi 2 "$Z" "${train[@]}" --steps 6 --save-every 3 --keep-checkpoints 2 --directions 2 --direction-groups 2 --out g2 2>/dev/null
"$Z" "${train[@]}" --steps 6 --directions 2 --resume "g2/$ck" --out g2to1 2>/dev/null
same uk g2to1 "direction groups -> 1 process"
mpi 2 "$Z" "${train[@]}" --steps 6 --save-every 3 --keep-checkpoints 2 --data-parallel 2 --out d2 2>/dev/null
"$Z" "${train[@]}" --steps 6 --resume "d2/$ck" --out d2to1 2>/dev/null
mpi 2 "$Z" "${train[@]}" --steps 6 --resume "s1/$ck" --data-parallel 2 --out s1tod2 2>/dev/null
python3 - <<'PY' || die "data-parallel resume left the trajectory"
import json
def rows(p): return [r for r in map(json.loads, open(p)) if r["type"] == "train"]
u = {x["step"]: x for x in rows("u/metrics.jsonl")}
for run in ("d2to1", "s1tod2"):
    r = rows(run + "/metrics.jsonl")
    assert [x["step"] for x in r] == [4, 5, 6], (run, [x["step"] for x in r])
    for x in r:
        y = u[x["step"]]
        assert abs(x["loss_plus"] - y["loss_plus"]) <= 1e-6 * abs(y["loss_plus"]), (run, x["step"])
PY
# The same resume twice is the same bytes (the layout's reduction order is fixed).
mpi 2 "$Z" "${train[@]}" --steps 6 --resume "s1/$ck" --data-parallel 2 --out s1tod2b 2>/dev/null
same s1tod2 s1tod2b "a data-parallel resume repeated"

# SIGKILL of rank 1 mid-run.
long=(--steps 400 --save-every 10 --keep-checkpoints 2)
"$Z" "${train[@]}" "${long[@]}" --out ul 2>/dev/null
mpirun --allow-run-as-root --oversubscribe -np 2 "$Z" "${train[@]}" "${long[@]}" --pert-parallel 2 --out kill \
  > kill.log 2>&1 &
launcher=$!
# Wait for the first checkpoint (at most 2 minutes: ranks start slowly on a loaded machine).
seen=
for _ in $(seq 2400); do
  if compgen -G 'kill/checkpoint-0*' >/dev/null; then seen=1; break; fi
  sleep 0.05
done
[ -n "$seen" ] || die "no checkpoint appeared: $(ls -la kill 2>&1) $(cat kill.log)"
victim=
# This script's own ranks only (they run in its working directory): other mpi
# tests may run at the same time with the same binary.
ours() { for p in $(pgrep -f "$Z train.*--out kill"); do [ "$(readlink /proc/$p/cwd)" = "$work" ] && echo "$p"; done; true; }
for p in $(ours); do
  if tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1; then victim=$p; fi
done
[ -n "$victim" ] || die "rank 1 not found"
kill -0 "$launcher" 2>/dev/null || die "the run ended before the kill"
t0=$(date +%s.%N)
kill -9 "$victim"
set +e; wait "$launcher"; rc=$?; set -e
t1=$(date +%s.%N)
[ "$rc" != 0 ] || die "the job exited 0 after a rank was killed"
python3 -c "import sys; d=$t1-$t0; print('job ended %.2f s after the kill' % d); sys.exit(0 if d <= $KILL_BOUND else 1)" \
  || die "the job took longer than ${KILL_BOUND}s to end"
grep -q 'exited on signal 9' kill.log || die "no message naming the killed rank: $(tail -5 kill.log)"
[ -z "$(ours)" ] || die "a rank outlived the job"
[ -z "$(ls -d kill/checkpoint-*.tmp 2>/dev/null)" ] || true  # a torn temporary may remain; resume ignores it
"$Z" "${train[@]}" "${long[@]}" --resume kill --out kill 2> resume.log || die "resume failed: $(tail -3 resume.log)"
same ul kill "resume after SIGKILL of a rank"
echo "layouts: ok ($arch)"
