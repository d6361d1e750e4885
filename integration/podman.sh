#!/bin/bash
# End-to-end: the real Podman 4.3 + conmon 2.1 (Debian packages) drive paddock as their OCI
# runtime. Usage: integration/podman.sh PADDOCK_BIN
# Podman gets private storage/runroot/tmpdir/network config in a private mount namespace; see lib.sh.
set -euo pipefail
E2E_SCRIPT=$(readlink -f "$0")
. "$(dirname "$E2E_SCRIPT")/lib.sh"
# cgroupfs driver: containers in /libpod_parent/libpod-<id>, conmon in /libpod_parent/conmon.
E2E_CG_RE='^/sys/fs/cgroup/[^/]+(/[^/]+)?/libpod_parent(/|$)'
E2E_FILES_RE='^(containers|libpod|crun|runc|netns|cni|conmon-term.*|podman.*|libpod_.*)$'

inner() {
    local L=$E2E_TMP
    # podman/conmon/netavark touch /run (libpod, containers, netns), /var/lib/containers
    # (blob-info cache), /var/tmp (image import), /dev/shm (libpod_lock), /etc/cni.
    private_mounts /run /var/lib/containers /var/tmp /dev/shm /etc/cni
    export TMPDIR=$L/tmp; mkdir -p "$TMPDIR"
    # Only our containers.conf: podman's JSON error handling is keyed on the runtime's basename
    # (integration.md rule 10), so call paddock through a symlink named runc.
    mkdir -p "$L/bin"; ln -s "$E2E_BIN" "$L/bin/runc"
    cat >"$L/containers.conf" <<EOF
[containers]
pids_limit = 0
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    export CONTAINERS_CONF=$L/containers.conf
    P=(podman --root "$L/storage" --runroot "$L/run" --tmpdir "$L/libpod" --network-config-dir "$L/net"
        --events-backend file --cgroup-manager cgroupfs --runtime "$L/bin/runc")
    trap 'inner_cleanup' EXIT
    # This VM: no CAP_SYS_RESOURCE (default rlimits cannot be raised), cgroup2 has only hugetlb.
    local Q=(--network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

    make_rootfs "$L/rootfs"
    tar --numeric-owner --owner=0 --group=0 -C "$L/rootfs" -cf "$L/rootfs.tar" .
    check_rc "podman import rootfs tar" 0 "${P[@]}" import "$L/rootfs.tar" localhost/busybox:local
    I=localhost/busybox:local

    # 1. output and exit code of a foreground run
    check_rc "podman run: sh -c 'echo hi; exit 7' exits 7" 7 "${P[@]}" run --rm "${Q[@]}" $I sh -c 'echo hi; exit 7'
    expect_out "podman run: output is 'hi'" '^hi$'

    # 2. detached container: exec, stop (SIGTERM ignored by pid 1 -> SIGKILL), rm
    check_rc "podman run -d --name p1 sleep 100" 0 "${P[@]}" run -d --name p1 "${Q[@]}" $I sleep 100
    check_rc "podman ps shows p1 running" 0 "${P[@]}" ps --format '{{.Names}} {{.Status}}'
    expect_out "podman ps: p1 Up" '^p1 Up'
    check_rc "podman exec p1 echo ok" 0 "${P[@]}" exec p1 echo ok
    expect_out "podman exec: output 'ok'" '^ok$'
    check_rc "podman exec: exit code 6 passes through" 6 "${P[@]}" exec p1 sh -c 'exit 6'
    check_rc "podman exec of a missing binary exits 127" 127 "${P[@]}" exec p1 /nonexistent
    note "$(printf %s "$OUT" | tail -1)"
    check_rc "podman top p1 (reads /proc, not the runtime)" 0 "${P[@]}" top p1
    if "$E2E_BIN" pause --help >/dev/null 2>&1; then
        check_rc "podman pause p1" 0 "${P[@]}" pause p1
        check_rc "podman inspect: paused" 0 "${P[@]}" inspect -f '{{.State.Status}}' p1
        expect_out "podman inspect: status paused" '^paused$'
        check_rc "podman unpause p1" 0 "${P[@]}" unpause p1
        check_rc "podman exec after unpause" 0 "${P[@]}" exec p1 true
    else
        echo "SKIP: pause/unpause (paddock has no 'pause' command yet)"
    fi
    check_rc "podman stop -t 1 p1" 0 "${P[@]}" stop -t 1 p1
    check_rc "podman inspect: p1 exited 137" 0 "${P[@]}" inspect -f '{{.State.Status}} {{.State.ExitCode}}' p1
    expect_out "podman inspect: 'exited 137'" '^exited 137$'
    check_rc "podman start of a stopped container" 0 "${P[@]}" start p1
    check_rc "podman kill p1" 0 "${P[@]}" kill p1
    check_rc "podman wait p1" 0 "${P[@]}" wait p1
    check_rc "podman rm p1" 0 "${P[@]}" rm p1

    # 3. errors: podman maps the runtime's message to exit codes 127 / 126
    check_rc "podman run /nonexistent exits 127" 127 "${P[@]}" run --rm "${Q[@]}" $I /nonexistent
    note "$(printf %s "$OUT" | tail -1)"
    check_rc "podman run of a non-executable file exits 126" 126 "${P[@]}" run --rm "${Q[@]}" $I /etc/passwd
    note "$(printf %s "$OUT" | tail -1)"

    # 4. run as a user, env, workdir
    check_rc "podman run --user 65534 -e -w" 0 "${P[@]}" run --rm "${Q[@]}" --user 65534 -e FOO=bar -w /tmp $I \
        sh -c 'echo "$(id -u) $FOO $(pwd)"'
    expect_out "podman run --user/-e/-w: '65534 bar /tmp'" '^65534 bar /tmp$'

    # 5. tty: conmon's console socket
    check_rc "podman run -t (console socket)" 0 script -qec "${P[*]} run --rm -t ${Q[*]} $I sh -c 'tty; exit 0'" /dev/null
    expect_out "podman run -t: the process has a terminal" '/dev/(pts/[0-9]+|console)'

    OUT=$("${P[@]}" ps -aq 2>&1)
    if [ -z "$OUT" ]; then pass "no containers left in podman"; else fail "left in podman: $(echo $OUT)"; fi
    # The runtime's delete removes the container's cgroups (the callers' parent dirs stay).
    local cg
    cg=$(find /sys/fs/cgroup/*/libpod_parent -mindepth 1 -maxdepth 1 -type d -name "libpod-*" 2>/dev/null || true)
    if [ -z "$cg" ]; then pass "no container cgroups left under /sys/fs/cgroup/*/libpod_parent/libpod-*"; else fail "container cgroups left: $(echo $cg)"; fi
}

inner_cleanup() {
    local rc=$?
    set +e
    "${P[@]}" rm -af -t 0 >/dev/null 2>&1
    if [ "$E2E_FAIL" != 0 ] || [ -n "${E2E_VERBOSE:-}" ]; then
        echo "---- podman events (died/cleanup) ----"
        tail -5 "$E2E_TMP/libpod/events/events.log" 2>/dev/null | cut -c1-300
    fi
    inner_finish
    return $rc
}

if [ "${1:-}" = --inner ]; then inner; exit 0; fi
e2e_main podman "${1:-}"
