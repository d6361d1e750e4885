#!/bin/bash
# Job for integration/guest/boot.sh: the bench inside the pure cgroup v2 guest, where crun
# runs too. Absolute times under emulation mean nothing; the ratios of one run do.
#   guest.sh PADDOCK_BIN
# The binary is copied to the guest's tmpfs first: its own directory there sits on
# overlayfs over 9p, where the read-only overlay view that paddock re-executes from
# cannot be made (EINVAL), and the memfd fallback would be measured instead.
here=$(cd "$(dirname "$0")" && pwd)
bin=$(mktemp -d /tmp/paddock-bin.XXXXXX)/paddock
cp "$1" "$bin"
export RUNS=${RUNS:-20} STEP_RUNS=${STEP_RUNS:-10} RSS_ROUNDS=${RSS_ROUNDS:-3}
export STORM_N=${STORM_N:-100} STORM_P=${STORM_P:-4}
exec "$here/run.sh" "$bin"
