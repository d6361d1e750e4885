#!/bin/bash
# paddock vs Debian's runc (and crun where the host lets it run) vs the kernel floor.
# Usage: bench/run.sh PADDOCK_BIN. Prints a markdown report (also kept in bench/out/report.md,
# raw hyperfine output next to it). Timings are noisy on a shared machine: commands that are
# compared run in one hyperfine invocation, and the ratios are the result.
# Knobs (environment): RUNS=60 STEP_RUNS=40 RSS_ROUNDS=10 STORM_N=500 STORM_P=8.
# Every container has a private --root under a temp dir and an ID starting with a per-run
# tag; the EXIT trap deletes them all and removes any cgroup, process or mount named by it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/out
mkdir -p "$out"
if [ -z "${PADDOCK_BENCH_INNER:-}" ]; then
	# crun refuses a hybrid host only because of the hugetlb-only v2 mount at
	# /sys/fs/cgroup/unified: on such a host every runtime runs in a private mount namespace
	# without it (on the v1 controllers), so that crun is measured beside the others.
	inner=("$BASH" "$0" "$@")
	if mountpoint -q /sys/fs/cgroup/unified && [ -d /sys/fs/cgroup/memory ]; then
		inner=(unshare --mount --propagation private "$BASH" -c \
			'umount /sys/fs/cgroup/unified && exec "$0" "$@"' "${inner[@]}")
	fi
	PADDOCK_BENCH_INNER=1 "${inner[@]}" | tee "$out/report.md"
	exit "${PIPESTATUS[0]}"
fi
bin=$(readlink -f "$1")
runs=${RUNS:-60} step_runs=${STEP_RUNS:-40} rss_rounds=${RSS_ROUNDS:-10}
storm_n=${STORM_N:-500} storm_p=${STORM_P:-8}
. "$here/lib.sh"
work=$(mktemp -d /tmp/paddock-bench.XXXXXX)
tag=pb$$x$RANDOM
trap teardown EXIT
trap 'exit 130' INT TERM
log() { [ -t 2 ] && echo "bench: $*" >&2 || true; }
prep=$here/prep.sh
runc=$(command -v runc || true)
R=$work/roots
pr=$R/paddock-main rr=$R/runc-main

PADDOCK=$bin "$here/../scripts/make-bundle.sh" "$work/bundle" /bin/true >/dev/null
# runc 1.1 predates runtime-spec 1.3; give it the same config under a version it knows.
sed -i 's/"ociVersion": "[^"]*"/"ociVersion": "1.0.2"/' "$work/bundle/config.json"
cp -a "$work/bundle" "$work/sleeper"
sed -i -z 's/"args": \[[^]]*\]/"args": ["sleep", "3600"]/' "$work/sleeper/config.json"
b=$work/bundle

# hyperfine SERIES ARGS...: one invocation, raw output kept; a failed series is reported, not fatal.
hf() {
	local name=$1; shift
	hyperfine -N --export-json "$out/$name.json" "$@" >"$out/$name.txt" 2>&1 && return 0
	echo "**series \`$name\` failed**: $(grep -m1 -iE 'error|fail' "$out/$name.txt" | cut -c1-200) (bench/out/$name.txt)" >>"$work/notes"
	rm -f "$out/$name.json"
}
# Failures noted while a table was being printed, printed after it.
# A failed series makes the whole bench exit 1 once the report is printed.
failed=0
notes() { [ -s "$work/notes" ] && { failed=1; cat "$work/notes"; : >"$work/notes"; } || true; }
cell() { set -- $1; [ "$1" = n/a ] && echo "n/a" || echo "$1 ($2–$3)"; }

echo "# paddock bench: $(nproc) cores, Linux $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
runc_v="runc: not installed"
[ -n "$runc" ] && runc_v="runc $("$runc" --version | sed -n '1s/.*version //p') ($runc)"
echo "paddock $("$bin" --version | sed -n '1s/.*version //p') ($bin), $runc_v"

# crun, only where it can actually run a container here.
crun=$(command -v crun || true) crun_ok=
if [ -z "$crun" ]; then
	echo "crun: skipped: not installed"
elif "$crun" --root "$R/crun-probe" run -b "$b" "$tag-cprobe" </dev/null >/dev/null 2>"$work/crun.err"; then
	crun_ok=1
else
	echo "crun: skipped: probe \`crun run\` failed here: $(grep -v '^$' "$work/crun.err" | head -n1 | cut -c1-160)"
fi

log "run series"
cmds=(-n paddock "$bin --root $pr run -b $b $tag-run-p")
[ -n "$runc" ] && cmds+=(-n runc "$runc --root $rr run -b $b $tag-run-r")
[ -n "$crun_ok" ] && cmds+=(-n crun "$crun --root $R/crun-main run -b $b $tag-run-c")
cmds+=(-n floor "unshare --mount --pid --net --ipc --uts --fork chroot $b/rootfs /bin/true")
echo
echo "## \`run\` of /bin/true, $runs runs each; floor = \`unshare --mount --pid --net --ipc --uts --fork chroot ROOTFS /bin/true\`"
hf run --warmup 5 --runs "$runs" "${cmds[@]}"
echo "| command | median ms | min–max ms | ratio to runc | ratio to floor |"
echo "|---|---|---|---|---|"
read -r floor_ms _ < <(hf_ms "$out/run.json" floor)
read -r runc_run_ms _ < <(hf_ms "$out/run.json" runc)
read -r p_run_ms _ < <(hf_ms "$out/run.json" paddock)
for n in paddock runc crun floor; do
	read -r med lo hi < <(hf_ms "$out/run.json" $n)
	[ "$med" = n/a ] && continue
	echo "| $n | $med | $lo–$hi | $(ratio "$med" "$runc_run_ms") | $(ratio "$med" "$floor_ms") |"
done
notes

log "create/start/delete series"
echo
echo "## create / start / delete, $step_runs runs each (each its own hyperfine series)"
echo "| step | paddock ms | runc ms | paddock/runc |"
echo "|---|---|---|---|"
# step, state to prepare, command after the runtime's --root.
for s in "create absent create -b $b" "start created start" "delete stopped delete"; do
	set -- $s
	step=$1 st=$2; shift 2
	args=(--warmup 3 --runs "$step_runs"
		--prepare "$prep $st $bin $pr $b $tag-$step-p" -n "paddock $step" "$bin --root $pr $* $tag-$step-p")
	clean="$prep absent $bin $pr $b $tag-$step-p"
	if [ -n "$runc" ]; then
		args+=(--prepare "$prep $st $runc $rr $b $tag-$step-r" -n "runc $step" "$runc --root $rr $* $tag-$step-r")
		clean="sh -c '$clean; $prep absent $runc $rr $b $tag-$step-r'"
	fi
	hf "$step" "${args[@]}" --cleanup "$clean"
	p=$(hf_ms "$out/$step.json" "paddock $step") r=$(hf_ms "$out/$step.json" "runc $step")
	echo "| $step | $(cell "$p") | $(cell "$r") | $(ratio "${p%% *}" "${r%% *}") |"
done
notes

log "exec series"
"$prep" running "$bin" "$pr" "$work/sleeper" "$tag-pe"
ecmds=(-n "paddock exec" "$bin --root $pr exec $tag-pe /bin/true")
if [ -n "$runc" ]; then
	"$prep" running "$runc" "$rr" "$work/sleeper" "$tag-re"
	ecmds+=(-n "runc exec" "$runc --root $rr exec $tag-re /bin/true")
fi
echo
echo "## \`exec\` of /bin/true into a running container, $runs runs each"
hf exec --warmup 5 --runs "$runs" "${ecmds[@]}"
p=$(hf_ms "$out/exec.json" "paddock exec") r=$(hf_ms "$out/exec.json" "runc exec")
echo "| paddock ms | runc ms | paddock/runc |"
echo "|---|---|---|"
echo "| $(cell "$p") | $(cell "$r") | $(ratio "${p%% *}" "${r%% *}") |"
notes

log "peak RSS"
echo
echo "## peak RSS, KiB (GNU time %M), median (min–max) of $rss_rounds rounds"
echo "| command | paddock | runc | paddock/runc |"
echo "|---|---|---|---|"
"$here/rss.sh" "$bin" "$pr" "$b" "$tag-rss-p" "$tag-pe" "$rss_rounds" "$work/rss-p" >"$work/rss-p.txt" 2>"$work/rss-p.err" ||
	echo "**paddock RSS series failed**: $(head -n1 "$work/rss-p.err")" >>"$work/notes"
if [ -n "$runc" ]; then
	"$here/rss.sh" "$runc" "$rr" "$b" "$tag-rss-r" "$tag-re" "$rss_rounds" "$work/rss-r" >"$work/rss-r.txt" 2>"$work/rss-r.err" ||
		echo "**runc RSS series failed**: $(head -n1 "$work/rss-r.err")" >>"$work/notes"
fi
p_create_kb=n/a
for op in create start delete run exec; do
	p=$(awk -v o=$op '$1 == o { print $2, $3, $4 }' "$work/rss-p.txt" 2>/dev/null) p=${p:-n/a}
	r=$(awk -v o=$op '$1 == o { print $2, $3, $4 }' "$work/rss-r.txt" 2>/dev/null) r=${r:-n/a}
	[ $op = create ] && p_create_kb=${p%% *}
	echo "| $op | $(cell "$p") | $(cell "$r") | $(ratio "${p%% *}" "${r%% *}") |"
done
notes

echo
echo "## binaries"
echo "| binary | bytes | MiB | linking | symbols |"
echo "|---|---|---|---|---|"
binrow() {
	local f=$1 desc link strip
	desc=$(file -bL "$f")
	case $desc in *static-pie*) link=static-pie ;; *statically*) link=static ;; *) link=dynamic ;; esac
	case $desc in *"not stripped"*) strip="not stripped" ;; *stripped*) strip=stripped ;; *) strip="?" ;; esac
	echo "| $2 | $(stat -Lc %s "$f") | $(awk -v s="$(stat -Lc %s "$f")" 'BEGIN { printf "%.2f", s / 1048576 }') | $link | $strip |"
}
binrow "$bin" paddock
[ -n "$runc" ] && binrow "$runc" runc
p_size=$(stat -Lc %s "$bin") p_desc=$(file -bL "$bin")

echo
echo "## storm: $storm_n × \`run\` /bin/true, $storm_p at a time (xargs -P $storm_p)"
echo "| runtime | wall s | containers/s | failures | state dirs left | cgroups left | processes left | mounts left |"
echo "|---|---|---|---|---|---|---|---|"
storm() { # NAME RUNTIME: one storm, its row, then clean up what it left.
	local name=$1 rt=$2 root=$R/$1-storm prefix=$tag-s${1:0:1} wall fails sd cg pc mn
	log "storm $name"
	read -r wall fails < <("$here/storm.sh" "$rt" "$root" "$b" "$prefix" "$storm_n" "$storm_p" "$work/storm-$name")
	read -r sd cg pc mn < <(leftovers "$prefix" "$root")
	local tput; tput=$(awk -v n="$storm_n" -v w="$wall" 'BEGIN { printf "%.1f", n / w }')
	echo "| $name | $wall | $tput | $fails | $sd | $cg | $pc | $mn |"
	eval "${name}_storm=\"$tput $fails $((sd + cg + pc + mn))\""
	if [ "$fails" -gt 0 ]; then
		storm_notes+="$name storm, first failure ($(head -n1 "$work/storm-$name/failed")): $(grep -hv '^$' "$work/storm-$name"/[0-9]* 2>/dev/null | head -n1 | cut -c1-200)"$'\n'
	fi
	teardown_prefix "$prefix" "$root"
}
storm_notes= paddock_storm="n/a n/a n/a" runc_storm="n/a n/a n/a"
storm paddock "$bin"
[ -n "$runc" ] && storm runc "$runc"
[ -n "$storm_notes" ] && printf '\n%s' "$storm_notes"

echo
echo "## shim"
echo "measured by \`make bench-shim\` (bench/shim.sh: beside containerd's Go shim, under containerd)"

echo
echo "## targets"
echo "| target | measured | result |"
echo "|---|---|---|"
verdict() { # AWK_CONDITION: MET / NOT MET, or n/a when a value is missing.
	case "$1" in *n/a*) echo "n/a"; return ;; esac
	awk "BEGIN { exit !($1) }" && echo MET || echo "NOT MET"
}
x=$(ratio "$p_run_ms" "$runc_run_ms")
echo "| \`paddock run\` median ≤ 0.5 × runc's | $x × ($p_run_ms vs $runc_run_ms ms) | $(verdict "$x <= 0.5") |"
x=$(ratio "$p_run_ms" "$floor_ms")
echo "| \`paddock run\` median ≤ 3 × kernel floor | $x × ($p_run_ms vs $floor_ms ms) | $(verdict "$x <= 3") |"
echo "| \`create\` peak RSS ≤ 3 MiB (3072 KiB) | $p_create_kb KiB | $(verdict "$p_create_kb <= 3072") |"
static=0
case $p_desc in *static*) case $p_desc in *"not stripped"*) ;; *stripped*) static=1 ;; esac ;; esac
echo "| static stripped binary ≤ 4 MiB (4194304 B) | $p_size B$([ $static = 1 ] || echo ", NOT static+stripped") | $(verdict "$static == 1 && $p_size <= 4194304") |"
read -r pt pf pl <<<"$paddock_storm"
read -r rt_ _ _ <<<"$runc_storm"
echo "| storm: zero failures | $pf failures of $storm_n | $(verdict "$pf == 0") |"
echo "| storm: nothing left behind | $pl items | $(verdict "$pl == 0") |"
echo "| storm: throughput ≥ runc's | $pt vs $rt_ containers/s | $(verdict "$pt >= $rt_") |"
exit "$failed"
