#!/bin/bash
# Shim memory and latency, ours (containerd-shim-paddock-v2) next to Debian's Go
# containerd-shim-runc-v2 with BinaryName = paddock, so only the shim differs. Usage:
# bench/shim.sh PADDOCK_BIN [ROUNDS]. Per running container: shim RSS and PSS (smaps_rollup)
# for one container and for a group of three in one shim; `ctr run --rm … true` latency
# (median of ROUNDS, default 15). Writes the table to bench/out/shim.txt.
# Runs in a private mount namespace with a private containerd (integration/lib.sh).
set -euo pipefail
E2E_SCRIPT=$(readlink -f "$0")
HERE=$(dirname "$E2E_SCRIPT")
. "$HERE/../integration/lib.sh"
NS=paddock-shim-bench
E2E_CG_RE="^/sys/fs/cgroup/[^/]+(/[^/]+)?/$NS(/|\$)"
E2E_FILES_RE='^(containerd|paddock-pty\..*)$'
export BENCH_OUT=${BENCH_OUT:-$HERE/out/shim.txt} BENCH_ROUNDS=${2:-15}

kib() { awk -v k="$2" '$1 == k":" {print $2}' "$1"; }

shim_mem() { # TASK_ID -> "RSS_KIB PSS_KIB" of the shim that is the task's parent
    local pid ppid
    pid=$("${C[@]}" task ls | awk -v id="$1" '$1 == id {print $2}')
    ppid=$(awk '/^PPid:/ {print $2}' /proc/$pid/status)
    echo "$(kib /proc/$ppid/smaps_rollup Rss) $(kib /proc/$ppid/smaps_rollup Pss)"
    [ -z "${BENCH_VERBOSE:-}" ] || { grep -E '^(Rss|Pss|Pss_Anon|Pss_File|Anonymous)' /proc/$ppid/smaps_rollup; grep Threads /proc/$ppid/status; } >&2
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

measure() { # NAME RUNTIME_ARGS...: prints one table line
    local name=$1; shift
    local r1 p1 rg pg i t0 t1 lat=()
    "${C[@]}" run -d "$@" $I m1 sleep 300 >/dev/null
    sleep 1
    read -r r1 p1 < <(shim_mem m1)
    "${C[@]}" task kill -s SIGKILL m1 >/dev/null; sleep 0.5; "${C[@]}" task delete m1 >/dev/null; "${C[@]}" container rm m1 >/dev/null
    for i in 1 2 3; do "${C[@]}" run -d "$@" --annotation "io.containerd.runc.v2.group=pod-${name%% *}" $I g$i sleep 300 >/dev/null; done
    sleep 1
    read -r rg pg < <(shim_mem g1)
    local nshims
    nshims=$(for i in 1 2 3; do
        p=$("${C[@]}" task ls | awk -v id=g$i '$1 == id {print $2}'); awk '/^PPid:/ {print $2}' /proc/$p/status; done | sort -u | wc -l)
    for i in 1 2 3; do "${C[@]}" task kill -s SIGKILL g$i >/dev/null; done; sleep 0.5
    for i in 1 2 3; do "${C[@]}" task delete g$i >/dev/null; "${C[@]}" container rm g$i >/dev/null; done
    "${C[@]}" run --rm "$@" $I warm true >/dev/null
    for i in $(seq 1 "$BENCH_ROUNDS"); do
        t0=$(date +%s%N); "${C[@]}" run --rm "$@" $I lat$i true >/dev/null; t1=$(date +%s%N)
        lat+=($(((t1 - t0) / 1000000)))
    done
    local med
    med=$(printf '%s\n' "${lat[@]}" | median)
    # A group in one shim: its memory is shared by the three containers.
    local per=1; [ "$nshims" = 1 ] && per=3
    printf '%-34s %8s %8s %10s %10s %7s %10s\n' "$name" "$r1" "$p1" "$((rg / per))" "$((pg / per))" "$nshims" "$med"
}

inner() {
    L=$E2E_TMP
    private_mounts /run /var/lib/containerd /opt/containerd
    export TMPDIR=$L/tmp; mkdir -p "$TMPDIR" "$L/bin" "$L/fifo"
    ln -s "$(dirname "$E2E_BIN")/containerd-shim-paddock-v2" "$L/bin/containerd-shim-paddock-v2"
    ctrd_config "$L"
    C=(ctr --address "$L/containerd.sock" -n $NS)
    PATH=$L/bin:$PATH containerd --config "$L/config.toml" >"$L/containerd.log" 2>&1 &
    CTRD_PID=$!
    trap 'kill $CTRD_PID 2>/dev/null; wait $CTRD_PID 2>/dev/null; inner_finish' EXIT
    local i
    for i in $(seq 1 100); do "${C[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done
    make_rootfs "$L/img/rootfs"; make_oci_image "$L/img/rootfs" "$L/img"
    local SN=()
    "${C[@]}" images import "$L/img/busybox-oci.tar" >/dev/null
    "${C[@]}" images check 2>/dev/null | grep -q 'busybox:local.*complete' ||
        { SN=(--snapshotter native); "${C[@]}" images import "${SN[@]}" "$L/img/busybox-oci.tar" >/dev/null; }
    I=docker.io/library/busybox:local
    {
        echo "shim memory per running container (KiB, smaps_rollup) and ctr run --rm true latency"
        echo "$(date -u +%FT%TZ), $(nproc) cpus, containerd $(containerd --version | awk '{print $3}'), runtime: paddock for both"
        printf '%-34s %8s %8s %10s %10s %7s %10s\n' shim "RSS(1)" "PSS(1)" "RSS/ctr(3)" "PSS/ctr(3)" "shims(3)" "run-ms(med)"
        measure containerd-shim-paddock-v2 --runtime io.containerd.paddock.v2 --fifo-dir "$L/fifo" "${SN[@]}"
        measure "containerd-shim-runc-v2 (Go)" --runtime io.containerd.runc.v2 --runc-binary "$E2E_BIN" \
            --runc-root "$L/runc-root" --fifo-dir "$L/fifo" "${SN[@]}"
    } | tee "$L/table"
}

if [ "${1:-}" = --inner ]; then inner; exit 0; fi
mkdir -p "$(dirname "$BENCH_OUT")"
e2e_main shim-bench "${1:-}" | tee "$BENCH_OUT.log" || true
sed -n '/^shim memory per/,/^containerd-shim-runc-v2 (Go)/p' "$BENCH_OUT.log" >"$BENCH_OUT"
rm -f "$BENCH_OUT.log"
