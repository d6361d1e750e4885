# shellcheck shell=bash disable=SC2154 # bin, work and tag are run.sh's.
# Helpers sourced by bench/run.sh. Every container the bench makes has an ID that starts
# with $tag and lives under a private --root in $work/roots/<runtime>-<purpose>.

# median, min and max of the numbers on stdin, one per line: "MEDIAN MIN MAX".
stats() {
	sort -n | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "n/a n/a n/a"; exit }
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%g %g %g\n", m, v[1], v[NR] }'
}

# ratio A/B to two decimals, or n/a.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f\n", a / b }'; }

# hyperfine JSON exports of the same commands merged into one: per command all the run times,
# and the means of the user and system CPU times.
hf_merge() {
	jq -s '[.[].results[]] | group_by(.command) | { results: map({ command: .[0].command,
		times: (map(.times) | add), user: (map(.user) | add / length), system: (map(.system) | add / length) }) }' "$@"
}

# From a (merged) hyperfine JSON export: "MEDIAN_MS MIN_MS MAX_MS" of the benchmark named $2.
hf_ms() {
	jq -r --arg n "$2" '.results[] | select(.command == $n) | .times | sort
		| [(if length % 2 == 1 then .[(length - 1) / 2] else (.[length / 2 - 1] + .[length / 2]) / 2 end), .[0], .[-1]]
		| map(. * 1000 | . * 100 | round / 100 | tostring) | join(" ")' "$1" 2>/dev/null |
		grep . || echo "n/a n/a n/a"
}

# From a (merged) hyperfine JSON export: "USER_MS SYSTEM_MS", the mean CPU times of benchmark
# $2 (with the children it waited for).
hf_cpu() {
	jq -r --arg n "$2" '.results[] | select(.command == $n)
		| [.user, .system] | map(. * 1000 | . * 100 | round / 100 | tostring) | join(" ")' "$1" 2>/dev/null |
		grep . || echo "n/a n/a"
}

# The runtime binary that owns a root dir named <runtime>-<purpose>.
root_runtime() {
	case ${1##*/} in
	paddock-*) echo "$bin" ;;
	runc-*) command -v runc ;;
	crun-*) command -v crun ;;
	esac
}

# PIDs of live (not zombie) processes that belong to containers or runtime invocations of
# prefix $1: their cgroup path or command line names it. Not this shell or its helpers.
# Zombies are left out: a killed container init whose runtime has exited is reparented to
# PID 1, which reaps it when it gets to it.
prefix_pids() {
	local f pid st
	for f in /proc/[0-9]*/cgroup; do
		pid=${f#/proc/}; pid=${pid%/cgroup}
		[ "$pid" = $$ ] || [ "$pid" = "$BASHPID" ] && continue
		{ read -r st <"/proc/$pid/stat"; } 2>/dev/null || continue
		st=${st##*) }
		[ "${st%% *}" = Z ] && continue
		if grep -qaF -- "$1" "$f" "/proc/$pid/cmdline" 2>/dev/null; then
			echo "$pid"
		fi
	done
}

# On a hybrid host the bench runs where /sys/fs/cgroup/unified is unmounted (run.sh): there it
# is a plain directory of the tmpfs under the cgroup mounts, where crun (taking the "0::/" line
# of /proc/self/cgroup for a v2 hierarchy) makes ID/cgroup.procs for each container and never
# removes them. Not cgroups: counted apart (unified_litter) and removed by teardown_prefix.
unified_tmpfs() { [ -d /sys/fs/cgroup/unified ] && ! mountpoint -q /sys/fs/cgroup/unified; }
unified_litter() {
	if unified_tmpfs; then
		find /sys/fs/cgroup/unified -mindepth 1 -maxdepth 1 -type d -name "*$1*" | wc -l
	else
		echo 0
	fi
}

# What a run with ID prefix $1 and state root $2 left behind: "STATE_DIRS CGROUPS PROCESSES MOUNTS".
leftovers() {
	local sd cg pr mn skip=()
	unified_tmpfs && skip=(-path '/sys/fs/cgroup/unified/*' -prune -o)
	sd=$(find "$2" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	cg=$(find /sys/fs/cgroup -mindepth 2 "${skip[@]}" -type d -name "*$1*" -print 2>/dev/null | wc -l)
	pr=$(prefix_pids "$1" | wc -l)
	# Mounts naming the prefix or under $work, but for the state roots' own tmpfs ($R).
	mn=$(awk -v p="$1" -v w="$work/" -v r="$R" \
		'index($0, p) || (index($5, w) == 1 && $5 != r) { n++ } END { print n + 0 }' /proc/self/mountinfo)
	echo "$sd $cg $pr $mn"
}

# Deletes every container in state root $2 and then (belt and braces) kills processes and
# removes cgroups named by ID prefix $1. Never fails.
teardown_prefix() {
	local rt pid d
	rt=$(root_runtime "$2")
	if [ -n "$rt" ] && [ -d "$2" ]; then
		for d in "$2"/*; do
			[ -d "$d" ] && timeout 20 "$rt" --root "$2" delete -f "${d##*/}" >/dev/null 2>&1 || true
		done
	fi
	for pid in $(prefix_pids "$1"); do
		kill -9 "$pid" 2>/dev/null || true
	done
	find /sys/fs/cgroup -mindepth 2 -depth -type d -name "*$1*" -exec rmdir {} \; 2>/dev/null || true
	if unified_tmpfs; then
		for d in /sys/fs/cgroup/unified/*"$1"*; do
			[ -d "$d" ] && rm -f "$d/cgroup.procs" && rmdir "$d"
		done 2>/dev/null || true
	fi
}

# Tears down everything under $work, also when interrupted mid-series: first whatever is
# still running with $tag in its command line or cgroup (hyperfine, a storm's xargs and
# its workers, runtime invocations, container processes), then the containers of every
# root, cgroups named by $tag, mounts under $work, and the directory. Idempotent; the EXIT trap.
teardown() {
	set +e
	local r m pid
	for _ in 1 2; do
		for pid in $(prefix_pids "$tag"); do kill -9 "$pid" 2>/dev/null; done
		sleep 0.1
	done
	for r in "$work"/roots/*; do
		[ -d "$r" ] && teardown_prefix "$tag" "$r"
	done
	teardown_prefix "$tag" /nonexistent
	for m in $(awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
		umount -l "$m" 2>/dev/null
	done
	rm -rf "$work"
}
