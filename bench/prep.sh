#!/bin/sh
# Puts one container into a given state; hyperfine's --prepare/--cleanup and bench/rss.sh call it.
# Usage: prep.sh STATE RUNTIME ROOT BUNDLE ID
#   absent:  no container ID (deleted with -f if it was there)
#   created: freshly created, not started
#   stopped: created, started and its process (/bin/true) has exited
#   running: started detached (for a long-running bundle)
set -u
state=$1 rt=$2 root=$3 bundle=$4 id=$5
"$rt" --root "$root" delete -f "$id" >/dev/null 2>&1
case $state in
absent) exit 0 ;;
created) exec "$rt" --root "$root" create -b "$bundle" "$id" </dev/null >/dev/null ;;
running) exec "$rt" --root "$root" run -d -b "$bundle" "$id" </dev/null >/dev/null ;;
stopped)
	"$rt" --root "$root" create -b "$bundle" "$id" </dev/null >/dev/null || exit 1
	"$rt" --root "$root" start "$id" || exit 1
	i=0
	while [ $i -lt 500 ]; do
		case $("$rt" --root "$root" state "$id" 2>/dev/null) in
		*'"status": "stopped"'*) exit 0 ;;
		esac
		i=$((i + 1))
		sleep 0.01
	done
	echo "prep.sh: $id did not stop" >&2
	exit 1
	;;
*)
	echo "prep.sh: unknown state $state" >&2
	exit 2
	;;
esac
