#!/bin/bash
# End-to-end: the real containerd 1.6 (Debian package) drives paddock through our own shim,
# containerd-shim-paddock-v2 (runtime io.containerd.paddock.v2), found on containerd's PATH
# and once by absolute path. Usage: integration/shim.sh PADDOCK_BIN (the shim is taken from
# the same directory). Private mount namespace, config, root, state and socket: see lib.sh.
set -euo pipefail
E2E_SCRIPT=$(readlink -f "$0")
. "$(dirname "$E2E_SCRIPT")/lib.sh"
NS=paddock-shim-e2e
E2E_CG_RE="^/sys/fs/cgroup/[^/]+(/[^/]+)?/$NS(/|\$)"
E2E_FILES_RE='^(containerd|paddock-pty\..*)$'

start_containerd() {
    PATH=$L/bin:$PATH containerd --config "$L/config.toml" >>"$L/containerd.log" 2>&1 &
    CTRD_PID=$!
    local i
    for i in $(seq 1 100); do "${C[@]}" version >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}

wait_status() { # ID STATUS: up to 5 s
    local i
    for i in $(seq 1 50); do "${C[@]}" task ls 2>/dev/null | grep -Eq "^$1[[:space:]].*$2" && return 0; sleep 0.1; done
    return 1
}

inner() {
    L=$E2E_TMP
    private_mounts /run /var/lib/containerd /opt/containerd
    export TMPDIR=$L/tmp; mkdir -p "$TMPDIR"
    mkdir -p "$L/bin" "$L/fifo"
    SHIM=$(dirname "$E2E_BIN")/containerd-shim-paddock-v2
    [ -x "$SHIM" ] || { fail "no shim binary next to $E2E_BIN"; return; }
    # A symlink: the shim resolves its own path and drives the paddock next to the real binary.
    ln -s "$SHIM" "$L/bin/containerd-shim-paddock-v2"
    ctrd_config "$L" debug
    C=(ctr --address "$L/containerd.sock" -n $NS)
    trap ctrd_cleanup EXIT
    start_containerd
    check_rc "containerd starts and answers" 0 "${C[@]}" version

    make_rootfs "$L/img/rootfs"
    make_oci_image "$L/img/rootfs" "$L/img"
    local SN=() i
    check_rc "ctr images import" 0 "${C[@]}" images import "$L/img/busybox-oci.tar"
    if ! "${C[@]}" images check 2>/dev/null | grep -q 'busybox:local.*complete'; then
        note "overlayfs unpack failed; retrying with the native snapshotter"
        SN=(--snapshotter native)
        check_rc "ctr images import --snapshotter native" 0 "${C[@]}" images import "${SN[@]}" "$L/img/busybox-oci.tar"
    fi
    I=docker.io/library/busybox:local
    R=(--runtime io.containerd.paddock.v2 --fifo-dir "$L/fifo" "${SN[@]}")

    # 1. foreground run: output and exit code; the absolute-path form of --runtime
    check_rc "run: sh -c 'echo hi; exit 3' exits 3" 3 "${C[@]}" run --rm "${R[@]}" $I t1 sh -c 'echo hi; exit 3'
    expect_out "run: output is 'hi'" '^hi$'
    check_rc "run --runtime /abs/path/shim" 0 "${C[@]}" run --rm --runtime "$L/bin/containerd-shim-paddock-v2" \
        --fifo-dir "$L/fifo" "${SN[@]}" $I t2 echo abs-ok
    expect_out "run --runtime /abs/path: output" '^abs-ok$'
    # (ctr sends no CloseIO at the end of its stdin, and the shim holds the FIFO open for
    # one, as containerd's runc shim does: so the reader stops by itself here.)
    check_rc "run: stdin reaches the container" 0 timeout 20 sh -c \
        "echo piped | ${C[*]} run --rm ${R[*]} $I t3 head -n 1"
    expect_out "run with piped stdin: head echoes it" '^piped$'

    # 2. runtime options through --runtime-config-path (runtimeoptions TOML): its own Root
    printf 'BinaryName = "%s"\nRoot = "%s"\n' "$E2E_BIN" "$L/paddock-root" >"$L/paddock.toml"
    check_rc "run -d with --runtime-config-path (Root)" 0 "${C[@]}" run -d "${R[@]}" \
        --runtime-config-path "$L/paddock.toml" $I o1 sleep 100
    if [ -d "$L/paddock-root/$NS/o1" ]; then pass "options: state under the configured Root"; else
        fail "options: no state in $L/paddock-root/$NS/o1"; fi
    "${C[@]}" task kill -s SIGKILL o1 >/dev/null 2>&1; wait_status o1 STOPPED || true
    check_rc "delete o1" 0 "${C[@]}" task delete o1
    "${C[@]}" container rm o1 >/dev/null 2>&1 || true

    # 3. tty
    check_rc "run -t (console socket)" 0 script -qec \
        "${C[*]} run --rm -t ${R[*]} $I t4 sh -c 'tty; exit 0'" /dev/null
    expect_out "run -t: the process has a terminal" '/dev/(pts/[0-9]+|console)'
    check_rc "run -t: exit code 4" 4 script -qec "${C[*]} run --rm -t ${R[*]} $I t5 sh -c 'exit 4'" /dev/null

    # 4. detached container: exec (plain and tty), ps, pause/resume, metrics, kill, delete
    check_rc "run -d c1 sleep 100" 0 "${C[@]}" run -d "${R[@]}" $I c1 sleep 100
    check_rc "task ls" 0 "${C[@]}" task ls
    expect_out "task ls: c1 RUNNING" 'c1[[:space:]]+[0-9]+[[:space:]]+RUNNING'
    check_rc "task exec echo ok" 0 "${C[@]}" task exec --exec-id e1 c1 echo ok
    expect_out "task exec: output" '^ok$'
    check_rc "task exec: exit code 5" 5 "${C[@]}" task exec --exec-id e2 c1 sh -c 'exit 5'
    check_rc "task exec -t" 0 script -qec "${C[*]} task exec -t --exec-id e3 c1 tty" /dev/null
    expect_out "task exec -t: a terminal" '/dev/pts/[0-9]+'
    check_rc "task exec of a missing binary fails" 1 "${C[@]}" task exec --exec-id e4 c1 /nonexistent
    expect_out "task exec /nonexistent: paddock's message" 'nonexistent'
    check_rc "task ps" 0 "${C[@]}" task ps c1
    expect_out "task ps: lists the init pid" '^[[:space:]]*[0-9]+'
    check_rc "task pause" 0 "${C[@]}" task pause c1
    check_rc "task ls (paused)" 0 "${C[@]}" task ls
    expect_out "task ls: c1 PAUSED" 'c1[[:space:]]+[0-9]+[[:space:]]+PAUSED'
    check_rc "task resume" 0 "${C[@]}" task resume c1
    check_rc "task exec after resume" 0 "${C[@]}" task exec --exec-id e5 c1 true
    check_rc "task metrics" 0 "${C[@]}" task metrics c1
    expect_out "task metrics: memory usage reported" 'memory\.usage_in_bytes|memory\.usage[[:space:]]'
    note "$(printf %s "$OUT" | grep -E 'memory\.(usage|limit)' | tr -s " " | tr "\n" ";")"
    # (sleep is pid 1 of its namespace: it ignores SIGTERM, as under runc)
    check_rc "task kill -s SIGKILL" 0 "${C[@]}" task kill -s SIGKILL c1
    if wait_status c1 STOPPED; then pass "killed c1 is STOPPED"; else fail "c1 not STOPPED after kill"; fi
    check_rc "task delete c1" 0 "${C[@]}" task delete c1
    expect_out "task delete: status 137" '137'
    check_rc "container rm c1" 0 "${C[@]}" container rm c1
    if [ -z "$(ls -A /run/containerd/paddock/$NS 2>/dev/null)" ]; then pass "runtime state dir empty after delete"; else
        fail "runtime state left: $(ls -A /run/containerd/paddock/$NS)"; fi

    # 4b. init in the host's pid namespace: its other processes are killed when it exits
    check_rc "run -d in the host pid namespace" 0 "${C[@]}" run -d "${R[@]}" --with-ns pid:/proc/$$/ns/pid \
        $I h1 sh -c 'sleep 300 & sleep 1'
    if wait_status h1 STOPPED; then pass "host pid ns: init exited"; else fail "host pid ns: h1 not STOPPED"; fi
    sleep 0.5
    local procs=/sys/fs/cgroup/pids/$NS/h1/cgroup.procs
    if [ -f $procs ] && [ -z "$(cat $procs)" ]; then
        pass "host pid ns: the background sleep was killed with init"; else
        fail "host pid ns: left in the container's cgroup: $(cat $procs 2>&1)"; fi
    check_rc "host pid ns: delete h1" 0 "${C[@]}" task delete h1
    "${C[@]}" container rm h1 >/dev/null 2>&1 || true

    # 4c. OOM: the memory cgroup's kill reaches containerd as a /tasks/oom event
    "${C[@]}" events >"$L/events.log" 2>&1 &
    local evpid=$!
    sleep 0.3
    check_rc "run with a 16 MiB memory limit, allocating more" 137 "${C[@]}" run --rm "${R[@]}" \
        --memory-limit 16777216 $I oom1 sh -c 'x=$(head -c 64000000 /dev/zero | tr "\\0" a); echo ${#x}'
    sleep 1
    kill $evpid 2>/dev/null; wait $evpid 2>/dev/null || true
    if grep -q '/tasks/oom' "$L/events.log"; then pass "oom: /tasks/oom event published"; else
        fail "oom: no /tasks/oom event: $(grep -c tasks "$L/events.log") task events"; fi

    # 4d. a shim killed under a running container: containerd's cleanup runs the binary
    # `delete`, which force-deletes the container and unmounts its rootfs
    check_rc "run -d k1 sleep 100" 0 "${C[@]}" run -d "${R[@]}" $I k1 sleep 100
    local kpid kshim
    kpid=$("${C[@]}" task ls | awk '$1 == "k1" {print $2}')
    kshim=$(awk '/^PPid:/ {print $2}' /proc/$kpid/status)
    kill -9 "$kshim"
    for i in $(seq 1 50); do "${C[@]}" task ls -q 2>/dev/null | grep -qx k1 || break; sleep 0.1; done
    if ! "${C[@]}" task ls -q | grep -qx k1; then pass "dead shim: task k1 cleaned up"; else fail "dead shim: k1 still listed"; fi
    if ! kill -0 "$kpid" 2>/dev/null || [ "$(awk '{print $3}' /proc/$kpid/stat)" = Z ]; then
        pass "dead shim: the container's init was killed"; else
        fail "dead shim: init $kpid still running"; fi
    if [ -z "$(ls -A /run/containerd/paddock/$NS 2>/dev/null)" ]; then pass "dead shim: paddock state removed"; else
        fail "dead shim: paddock state left: $(ls -A /run/containerd/paddock/$NS)"; fi
    "${C[@]}" container rm k1 >/dev/null 2>&1 || true

    # 5. a failed create reports paddock's own error, not "exit status 1"
    check_rc "run of a missing binary fails" 1 "${C[@]}" run --rm "${R[@]}" $I t6 /nonexistent
    expect_out "failed create: paddock's message names the file" 'nonexistent'
    if printf %s "$OUT" | grep -q 'exit status 1'; then fail "failed create: bare 'exit status 1'"; else
        pass "failed create: no bare 'exit status 1'"; fi
    note "$(printf %s "$OUT" | tail -1)"
    "${C[@]}" container rm t6 >/dev/null 2>&1 || true

    # 6. twenty containers at once
    local pids=() ok=0
    for i in $(seq 1 20); do
        "${C[@]}" run --rm "${R[@]}" $I par$i sh -c "echo par$i" >"$L/par$i.out" 2>&1 &
        pids+=($!)
    done
    local bad=""
    for i in "${!pids[@]}"; do
        local prc=0
        wait "${pids[$i]}" || prc=$?
        if [ $prc = 0 ] && grep -qx "par$((i + 1))" "$L/par$((i + 1)).out"; then ok=$((ok + 1)); else
            bad="$bad par$((i + 1)) (exit $prc): $(tr '\n' ' ' <"$L/par$((i + 1)).out" | tail -c 300)"; fi
    done
    if [ $ok = 20 ]; then pass "20 parallel runs: all printed their line and exited 0"; else
        fail "20 parallel runs: $ok of 20 succeeded:$bad"; fi

    # 7. containerd restarted while containers run
    check_rc "run -d r1 sleep 100" 0 "${C[@]}" run -d "${R[@]}" $I r1 sleep 100
    check_rc "run -d r2 (exits while containerd is down)" 0 "${C[@]}" run -d "${R[@]}" $I r2 sh -c 'sleep 2; exit 7'
    kill "$CTRD_PID"; wait "$CTRD_PID" 2>/dev/null || true
    sleep 3
    if start_containerd; then pass "containerd restarted"; else fail "containerd did not restart"; fi
    check_rc "task ls after restart" 0 "${C[@]}" task ls
    expect_out "after restart: r1 RUNNING" 'r1[[:space:]]+[0-9]+[[:space:]]+RUNNING'
    expect_out "after restart: r2 STOPPED" 'r2[[:space:]]+[0-9]+[[:space:]]+STOPPED'
    check_rc "after restart: exec in r1" 0 "${C[@]}" task exec --exec-id e1 r1 echo alive
    check_rc "after restart: kill r1" 0 "${C[@]}" task kill -s SIGKILL r1
    if wait_status r1 STOPPED; then pass "after restart: r1 reaped (STOPPED)"; else fail "r1 not STOPPED"; fi
    check_rc "after restart: delete r1" 0 "${C[@]}" task delete r1
    expect_out "after restart: r1 status 137" '137'
    check_rc "after restart: delete r2" 0 "${C[@]}" task delete r2
    expect_out "after restart: r2 exit status 7" '(^|[^0-9])7([^0-9]|$)'
    "${C[@]}" container rm r1 r2 >/dev/null 2>&1 || true

    # 8. a pod: three containers with one group annotation share one shim process
    local g=(--annotation io.containerd.runc.v2.group=pod1)
    for i in 1 2 3; do check_rc "group: run -d g$i" 0 "${C[@]}" run -d "${R[@]}" "${g[@]}" $I g$i sleep 100; done
    local parents
    parents=$("${C[@]}" task ls | awk '$1 ~ /^g[123]$/ {print $2}' |
        while read -r p; do awk '/^PPid:/ {print $2}' /proc/$p/status; done | sort -u)
    if [ "$(echo "$parents" | wc -l)" = 1 ] && [ "$(cat /proc/$parents/comm 2>/dev/null)" = containerd-shim ]; then
        pass "group: g1..g3 are served by one shim process ($parents)"; else
        fail "group: shim processes: $(echo $parents)"; fi
    for i in 1 2 3; do "${C[@]}" task kill -s SIGKILL g$i >/dev/null 2>&1 || true; done
    for i in 1 2 3; do
        wait_status g$i STOPPED || true
        check_rc "group: delete g$i" 0 "${C[@]}" task delete g$i
        "${C[@]}" container rm g$i >/dev/null 2>&1 || true
    done
    sleep 1
    # (an exited shim may stay a zombie of PID 1 for a while)
    if [ -z "$parents" ] || ! kill -0 $parents 2>/dev/null || [ "$(awk '{print $3}' /proc/$parents/stat)" = Z ]; then pass "group: the shim left with its last container"; else
        fail "group: shim $parents still running"; fi

    # nothing left
    OUT=$("${C[@]}" task ls -q 2>&1; "${C[@]}" container ls -q 2>&1)
    if [ -z "$OUT" ]; then pass "no tasks or containers left in containerd"; else fail "left in containerd: $(echo $OUT)"; fi
    local cg
    cg=$(find /sys/fs/cgroup/*/$NS -mindepth 1 -maxdepth 1 -type d 2>/dev/null || true)
    if [ -z "$cg" ]; then pass "no container cgroups left"; else fail "container cgroups left: $(echo $cg)"; fi
    if [ -z "$(ls -A /run/containerd/s 2>/dev/null)" ]; then pass "no shim sockets left"; else
        fail "shim sockets left: $(ls -A /run/containerd/s)"; fi
    if [ -z "$(ls -A "$TMPDIR" | grep paddock-pty || true)" ]; then pass "no console socket dirs left"; else
        fail "console socket dirs left"; fi
    if [ -z "$(grep -F "$L/state" /proc/self/mountinfo || true)" ]; then pass "no rootfs mounts left"; else
        fail "rootfs mounts left: $(grep -F "$L/state" /proc/self/mountinfo | awk '{print $5}')"; fi
}

if [ "${1:-}" = --inner ]; then inner; exit 0; fi
e2e_main shim "${1:-}"
