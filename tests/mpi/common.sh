# Sourced by the scripts of tests/mpi after they read their arguments: a
# private working directory (the current directory from here on, removed with
# anything still running in it at exit), Open MPI set up for a container
# without a network (shared memory between local ranks, root, oversubscribed),
# `mpi NP ...` (mpirun with a 120 s bound) and `die MESSAGE`.
work=$(mktemp -d)
cleanup() { pkill -9 -f "$work/" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
export OMPI_MCA_btl=self,vader OMPI_MCA_plm_rsh_agent= OMPI_MCA_rmaps_base_oversubscribe=1
mpi() { timeout 120 mpirun --allow-run-as-root --oversubscribe -np "$@"; }
die() { echo "FAIL: $*" >&2; exit 1; }
