#!/bin/bash
# Job for integration/guest/boot.sh: the bench inside the pure cgroup v2 guest, where crun
# runs too. Absolute times under emulation mean nothing; the ratios of one run do.
#   guest.sh PADDOCK_BIN
here=$(cd "$(dirname "$0")" && pwd)
export RUNS=${RUNS:-20} STEP_RUNS=${STEP_RUNS:-10} RSS_ROUNDS=${RSS_ROUNDS:-3}
export STORM_N=${STORM_N:-100} STORM_P=${STORM_P:-4}
exec "$here/run.sh" "$1"
