#!/bin/bash
# End-to-end: the real containerd 1.6 (Debian package) drives paddock through its own runc shim
# (io.containerd.runc.v2 with BinaryName = paddock). Usage: integration/containerd.sh PADDOCK_BIN
# Everything runs in a private mount namespace with its own config/root/state/socket; see lib.sh.
set -euo pipefail
E2E_SCRIPT=$(readlink -f "$0")
. "$(dirname "$E2E_SCRIPT")/lib.sh"
NS=paddock-e2e                       # containerd namespace; ctr's cgroups are /<ns>/<id>
E2E_CG_RE="^/sys/fs/cgroup/[^/]+(/[^/]+)?/$NS(/|\$)"
E2E_FILES_RE='^(containerd|runc|pty[0-9]+|runc-process[0-9]+)$'

inner() {
    local L=$E2E_TMP
    # containerd writes /run/containerd (shim sockets are hard-coded to /run/containerd/s),
    # /var/lib/containerd, and go's temp files; keep all of it private.
    private_mounts /run /var/lib/containerd /opt/containerd
    export TMPDIR=$L/tmp; mkdir -p "$TMPDIR"
    mkdir -p "$L/bin" "$L/fifo"
    ctrd_config "$L" debug
    C=(ctr --address "$L/containerd.sock" -n $NS)
    containerd --config "$L/config.toml" >"$L/containerd.log" 2>&1 &
    CTRD_PID=$!
    trap ctrd_cleanup EXIT
    local i
    for i in $(seq 1 100); do [ -S "$L/containerd.sock" ] && break; sleep 0.1; done
    check_rc "containerd starts and answers" 0 "${C[@]}" version

    make_rootfs "$L/img/rootfs"
    make_oci_image "$L/img/rootfs" "$L/img"
    local SN=()
    check_rc "ctr images import (OCI tar, uncompressed layer)" 0 "${C[@]}" images import "$L/img/busybox-oci.tar"
    if ! "${C[@]}" images check 2>/dev/null | grep -q 'busybox:local.*complete'; then
        note "overlayfs unpack failed; retrying with the native snapshotter"
        SN=(--snapshotter native)
        check_rc "ctr images import --snapshotter native" 0 "${C[@]}" images import "${SN[@]}" "$L/img/busybox-oci.tar"
    fi
    I=docker.io/library/busybox:local
    R=(--runtime io.containerd.runc.v2 --runc-binary "$E2E_BIN" --runc-root "$L/runc-root" --fifo-dir "$L/fifo" "${SN[@]}")

    # 1. output and exit code of a foreground run
    check_rc "ctr run: sh -c 'echo hi; exit 3' exits 3" 3 "${C[@]}" run --rm "${R[@]}" $I t1 sh -c 'echo hi; exit 3'
    expect_out "ctr run: output is 'hi'" '^hi$'

    # 2. rootfs without an image
    check_rc "ctr run --rootfs DIR" 0 "${C[@]}" run --rm "${R[@]}" --rootfs "$L/img/rootfs" t2 /bin/echo rootfs-ok
    expect_out "ctr run --rootfs: output" '^rootfs-ok$'

    # 3. detached container: exec, ps, kill, delete, rm
    check_rc "ctr run -d c2 sleep 100" 0 "${C[@]}" run -d "${R[@]}" $I c2 sleep 100
    check_rc "ctr task ls shows c2 RUNNING" 0 "${C[@]}" task ls
    expect_out "ctr task ls: c2 RUNNING" 'c2[[:space:]]+[0-9]+[[:space:]]+RUNNING'
    check_rc "ctr task exec --exec-id e1 c2 echo ok" 0 "${C[@]}" task exec --exec-id e1 c2 echo ok
    expect_out "ctr task exec: output 'ok'" '^ok$'
    check_rc "ctr task exec: exit code 5 passes through" 5 "${C[@]}" task exec --exec-id e2 c2 sh -c 'exit 5'
    check_rc "ctr task exec of a missing binary fails" 1 "${C[@]}" task exec --exec-id e3 c2 /nonexistent
    note "$(printf %s "$OUT" | tail -1)"
    check_rc "ctr task ps c2 (runtime ps --format json)" 0 "${C[@]}" task ps c2
    [ $RC = 0 ] && expect_out "ctr task ps: lists the init pid" '^[[:space:]]*[0-9]+'
    if "$E2E_BIN" pause --help >/dev/null 2>&1; then
        check_rc "ctr task pause c2" 0 "${C[@]}" task pause c2
        check_rc "ctr task ls shows c2 PAUSED" 0 "${C[@]}" task ls
        expect_out "ctr task ls: c2 PAUSED" 'c2[[:space:]]+[0-9]+[[:space:]]+PAUSED'
        check_rc "ctr task resume c2" 0 "${C[@]}" task resume c2
        check_rc "ctr task exec after resume" 0 "${C[@]}" task exec --exec-id e4 c2 true
    else
        echo "SKIP: pause/resume (paddock has no 'pause' command yet)"
    fi
    check_rc "ctr task kill -s SIGKILL c2" 0 "${C[@]}" task kill -s SIGKILL c2
    for i in $(seq 1 50); do "${C[@]}" task ls 2>/dev/null | grep -Eq 'c2.*STOPPED' && break; sleep 0.1; done
    check_rc "ctr task ls shows c2 STOPPED" 0 "${C[@]}" task ls
    expect_out "ctr task ls: c2 STOPPED" 'c2[[:space:]]+[0-9]+[[:space:]]+STOPPED'
    check_rc "ctr task delete c2" 0 "${C[@]}" task delete c2
    expect_out "ctr task delete: status 137" '137'
    check_rc "ctr container rm c2" 0 "${C[@]}" container rm c2
    if [ -z "$(ls -A "$L/runc-root/$NS" 2>/dev/null)" ]; then pass "runtime state dir empty after delete"; else
        fail "runtime state left: $(ls -A "$L/runc-root/$NS")"; fi

    # 4. kill of a task that has already exited is NotFound, not an error
    check_rc "ctr run -d c3 true" 0 "${C[@]}" run -d "${R[@]}" $I c3 true
    sleep 0.5
    check_rc "ctr task delete c3 (exited)" 0 "${C[@]}" task delete c3
    check_rc "ctr container rm c3" 0 "${C[@]}" container rm c3

    # 5. a container that fails to start: the error reaches the user, nothing is left behind
    check_rc "ctr run of a missing binary fails" 1 "${C[@]}" run --rm "${R[@]}" $I t5 /nonexistent
    expect_out "ctr run /nonexistent: error names the file" 'nonexistent'
    note "$(printf %s "$OUT" | tail -1)"
    "${C[@]}" container rm t5 >/dev/null 2>&1 || true

    # 6. tty: console socket
    check_rc "ctr run -t (console socket)" 0 script -qec \
        "ctr --address $L/containerd.sock -n $NS run --rm -t ${R[*]} $I t6 sh -c 'tty; exit 0'" /dev/null
    expect_out "ctr run -t: the process has a terminal" '/dev/(pts/[0-9]+|console)'
    check_rc "ctr run -t: exit code 4 through the tty path" 4 script -qec \
        "ctr --address $L/containerd.sock -n $NS run --rm -t ${R[*]} $I t7 sh -c 'exit 4'" /dev/null

    # nothing left in containerd
    OUT=$("${C[@]}" task ls -q 2>&1; "${C[@]}" container ls -q 2>&1)
    if [ -z "$OUT" ]; then pass "no tasks or containers left in containerd"; else fail "left in containerd: $(echo $OUT)"; fi
    # The runtime's delete removes the container's cgroups (the callers' parent dirs stay).
    local cg
    cg=$(find /sys/fs/cgroup/*/$NS -mindepth 1 -maxdepth 1 -type d 2>/dev/null || true)
    if [ -z "$cg" ]; then pass "no container cgroups left under /sys/fs/cgroup/*/$NS/"; else fail "container cgroups left: $(echo $cg)"; fi
}

if [ "${1:-}" = --inner ]; then inner; exit 0; fi
e2e_main containerd "${1:-}"
