#!/bin/bash
# Parallel storm: N containers (`run` of the bundle's /bin/true), P at a time, IDs PREFIX-1..N.
# Usage: storm.sh RUNTIME ROOT BUNDLE PREFIX N P ERRDIR
# Prints "WALL_SECONDS FAILURES"; ERRDIR keeps the IDs that failed (ERRDIR/failed) and
# the stderr of each failed run (ERRDIR/ID).
set -euo pipefail
rt=$1 root=$2 bundle=$3 prefix=$4 n=$5 p=$6 errdir=$7
mkdir -p "$errdir" "$root"
: >"$errdir/failed"
t0=$(date +%s.%N)
# One short-lived sh per container, the same for every runtime: it records failures.
seq 1 "$n" | xargs -P "$p" -I{} sh -c \
	'"$0" --root "$1" run -b "$2" "$3-{}" </dev/null >/dev/null 2>"$4/{}" && rm -f "$4/{}" || echo {} >>"$4/failed"' \
	"$rt" "$root" "$bundle" "$prefix" "$errdir" || true
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v f="$(wc -l <"$errdir/failed")" 'BEGIN { printf "%.2f %d\n", b - a, f }'
