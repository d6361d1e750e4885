#!/bin/bash
# Job for integration/guest/boot.sh: the bench inside the pure cgroup v2 guest, where crun
# runs too. Absolute times under emulation (~15× slower) mean nothing; the ratios of one run
# do. Small run counts keep `make bench-v2` within ~10 minutes.
#   guest.sh PADDOCK_BIN
# The binary is copied to the guest's tmpfs first: its own directory there sits on
# overlayfs over 9p, where the read-only overlay view that paddock re-executes from
# cannot be made (EINVAL), and the memfd fallback would be measured instead.
# Only the console comes back from the guest: the per-phase breakdown is printed after the
# report (make bench-v2 keeps both in bench/out/report-v2.txt).
here=$(cd "$(dirname "$0")" && pwd)
bin=$(mktemp -d /tmp/paddock-bin.XXXXXX)/paddock
cp "$1" "$bin"
export RUNS=${RUNS:-15} STEP_RUNS=${STEP_RUNS:-9} ROUNDS=${ROUNDS:-3} RSS_ROUNDS=${RSS_ROUNDS:-3}
export STORM_N=${STORM_N:-60} STORM_P=${STORM_P:-4} PHASE_RUNS=${PHASE_RUNS:-3}
# stderr joins the report (no progress lines: they would land inside its tables).
"$here/run.sh" "$bin" 2>&1 | cat
rc=${PIPESTATUS[0]}
if [ -f "$here/out/phases.txt" ]; then
	echo
	echo "---- bench/out/phases.txt (in the guest) ----"
	cat "$here/out/phases.txt"
fi
rm -rf "$(dirname "$bin")"
exit "$rc"
