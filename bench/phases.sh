#!/bin/bash
# Where the time of one `run` goes, phase by phase (bench/phases.awk), for each runtime named.
# Usage: phases.sh OUT ROOTS BUNDLE TAG N NAME BIN UNTRACED_MS [NAME BIN UNTRACED_MS]...
# Writes the breakdown to OUT (markdown) and prints the side-by-side table for the report.
# Each runtime runs the bundle N times under `strace --seccomp-bpf`, which stops only at the
# landmark syscalls (each stop costs tens of µs; the other calls run untraced): each phase's
# time is its median over those runs. One more run under a full `strace -f` (every syscall
# stopped, far slower) counts the calls of each phase and finds its slowest call. State root
# ROOTS/NAME-phases, container IDs TAG-ph-NAME-I. The trace of the run with the median total
# is kept next to OUT as phases-NAME.strace.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1 roots=$2 bundle=$3 tag=$4 n=$5
shift 5
# No open/openat: a landmark for the config read would stop each of the runtime's 100-150
# opens, which would weigh on some phases far more than on others.
landmarks=execve,execveat,clone,clone3,fork,vfork,mkdir,mkdirat,mount,pivot_root,rmdir,unlink,unlinkat
dir=$(dirname "$out")
keys="start reexec state cgroup clone mounts pivot exec reap cgrm strm"
label() { # KEY: "what the phase holds|its landmark"
	case $1 in
	start) echo "process start (and, where it re-executes, sealed-binary set-up; else config read, parse and checks)|execve of the runtime" ;;
	reexec) echo "re-executed copy's start-up, config read, parse and checks|execveat by the runtime's process" ;;
	state) echo "state dir and state files|mkdir ROOT/ID" ;;
	cgroup) echo "cgroup creation and limits|first mkdir under /sys/fs/cgroup" ;;
	clone) echo "clone of init, cgroup join, sync, hostname, lo up|clone" ;;
	mounts) echo "init: mount namespace set-up|init's first mount" ;;
	pivot) echo "init: pivot_root to execve (ids, caps, fds; paddock: its exec tail)|pivot_root" ;;
	exec) echo "the container process (/bin/true)|its execve" ;;
	reap) echo "wait, state read|the process's exit" ;;
	cgrm) echo "cgroup removal|first rmdir under /sys/fs/cgroup" ;;
	strm) echo "state dir removal, exit|next unlink or rmdir" ;;
	esac
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# trace NAME BIN I MODE: one run of the bundle under strace (MODE light or full), its phases
# in $dir/.ph-NAME-MODE-I.txt, its log in $dir/.ph-NAME-MODE-I.
trace() {
	local opts=(-f -ttt -T) log=$dir/.ph-$1-$4-$3
	[ "$4" = light ] && opts+=(--seccomp-bpf -e "trace=$landmarks")
	strace "${opts[@]}" -o "$log" "$2" --root "$roots/$1-phases" run -b "$bundle" "$tag-ph-$1-$3" </dev/null >/dev/null
	awk -v id="$tag-ph-$1-$3" -f "$here/phases.awk" "$log" >"$log.txt"
}

{
	echo "# Where the time of one \`run\` of /bin/true goes"
	echo
	echo "Each runtime ran the bench bundle $n times under \`strace --seccomp-bpf -f -ttt -T\`, stopped only at"
	echo "the landmark syscalls ($landmarks)."
	echo "The config read and parse fall in phase 2: a landmark for them would have to stop every open."
	echo "A phase lasts from its landmark to the next landmark in time (so it holds whatever both the"
	echo "runtime and the container's init did meanwhile); ms is its median over the $n runs, share"
	echo "its part of the sum of those medians, # its place in the runtime's order."
	echo "**Tracing inflates every time here** (each stop costs tens of µs, and the rest of the machine"
	echo "runs meanwhile): the traced total lies well above the untraced median of the run series, and only"
	echo "the shares, and the same phase compared between runtimes, mean something."
	echo "calls: every syscall begun in the phase in one more run, fully traced (\`strace -f\`); slowest:"
	echo "the longest of them that works rather than waits for the other process (ms, inflated too)."
} >"$out"

declare -A ms share calls slow pos sum
names=()
while [ $# -ge 3 ]; do
	name=$1 bin=$2 untraced=$3
	shift 3
	names+=("$name")
	for ((i = 1; i <= n; i++)); do trace "$name" "$bin" "$i" light; done
	trace "$name" "$bin" 0 full
	totals=$(for ((i = 1; i <= n; i++)); do awk -v i="$i" '$1 == "total" { print $2, i }' "$dir/.ph-$name-light-$i.txt"; done | sort -n)
	range=$(awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "–" hi }' <<<"$totals")
	mid=$(sed -n "$(((n + 1) / 2))p" <<<"$totals" | cut -d' ' -f2)
	cp "$dir/.ph-$name-light-$mid" "$dir/phases-$name.strace"
	sum[$name]=0
	for key in $keys; do
		ms[$name.$key]=$(cat "$dir"/.ph-"$name"-light-*.txt | awk -v k="$key" '$1 == k { print $3 }' | median)
		[ -n "${ms[$name.$key]}" ] && sum[$name]=$(awk -v a="${sum[$name]}" -v b="${ms[$name.$key]}" 'BEGIN { printf "%.2f", a + b }')
	done
	for key in $keys; do
		[ -n "${ms[$name.$key]}" ] && share[$name.$key]=$(awk -v a="${ms[$name.$key]}" -v b="${sum[$name]}" 'BEGIN { printf "%.0f%%", 100 * a / b }')
	done
	k=0
	while read -r key _; do
		[ "$key" = total ] || pos[$name.$key]=$((k += 1))
	done <"$dir/.ph-$name-light-$mid.txt"
	while read -r key _ _ c s; do calls[$name.$key]=$c slow[$name.$key]=$s; done <"$dir/.ph-$name-full-0.txt"
	{
		echo
		echo "## $name: sum of the phase medians ${sum[$name]} ms (traced totals $range ms; untraced median in the run series $untraced ms)"
		echo "| # | phase | from | ms | share | calls | slowest call |"
		echo "|---|---|---|---|---|---|---|"
		while read -r key _; do
			[ "$key" = total ] || [ -z "${ms[$name.$key]:-}" ] && continue
			IFS='|' read -r what from <<<"$(label "$key")"
			echo "| ${pos[$name.$key]} | $what | $from | ${ms[$name.$key]} | ${share[$name.$key]} | ${calls[$name.$key]:-?} | \`${slow[$name.$key]:-?}\` |"
		done <"$dir/.ph-$name-light-$mid.txt"
		echo "| | all | | ${sum[$name]} | 100% | $(awk '$1 == "total" { print $3 }' "$dir/.ph-$name-full-0.txt") | |"
	} >>"$out"
	rm -f "$dir"/.ph-"$name"-*
done

# Side by side, the phases in the usual order, each with its place in that runtime's run.
side() {
	local key name row="| phase |" rule="|---|"
	for name in "${names[@]}"; do row+=" $name ms (share, #) |" rule+="---|"; done
	echo "$row"
	echo "$rule"
	for key in $keys; do
		row="| $(label "$key" | cut -d'|' -f1) |"
		for name in "${names[@]}"; do
			[ -n "${ms[$name.$key]}" ] && row+=" ${ms[$name.$key]} (${share[$name.$key]}, ${pos[$name.$key]:-?}) |" || row+=" – |"
		done
		echo "$row"
	done
	row="| sum of the medians (traced) |"
	for name in "${names[@]}"; do row+=" ${sum[$name]} |"; done
	echo "$row"
}
{
	echo
	echo "## side by side"
	side
} >>"$out"
side
