#!/bin/bash
# Peak RSS (KiB, GNU time's %M: the ru_maxrss that wait4 reports for the command, which
# covers the children it waited for) of create, start, delete, run and exec, N rounds.
# Usage: rss.sh RUNTIME ROOT BUNDLE ID EXEC_ID N OUTDIR
# Writes OUTDIR/<op> (one value per round) and prints "OP MEDIAN MIN MAX" per op.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
rt=$1 root=$2 bundle=$3 id=$4 exec_id=$5 n=$6 dir=$7
mkdir -p "$dir"
ops=(create start delete run exec)
for op in "${ops[@]}"; do : >"$dir/$op"; done
m() { # OP COMMAND...: run it under GNU time, append its peak RSS to OUTDIR/OP.
	local op=$1; shift
	/usr/bin/time -f %M -o "$dir/.t" "$@" </dev/null >/dev/null 2>"$dir/.err" ||
		{ echo "rss.sh: $op failed: $(head -c 300 "$dir/.err")" >&2; return 1; }
	tail -n 1 "$dir/.t" >>"$dir/$op"
}
"$here/prep.sh" absent "$rt" "$root" "$bundle" "$id"
for ((i = 0; i < n; i++)); do
	m create "$rt" --root "$root" create -b "$bundle" "$id"
	m start "$rt" --root "$root" start "$id"
	for ((w = 0; w < 500; w++)); do
		[[ $("$rt" --root "$root" state "$id") == *'"status": "stopped"'* ]] && break
		sleep 0.01
	done
	m delete "$rt" --root "$root" delete "$id"
	m run "$rt" --root "$root" run -b "$bundle" "$id"
	m exec "$rt" --root "$root" exec "$exec_id" /bin/true
done
for op in "${ops[@]}"; do echo "$op $(stats <"$dir/$op")"; done
