#!/bin/bash
# End-to-end: containerd 1.6's CRI plugin, which is what the kubelet talks to, runs pods through
# paddock under two runtime classes:
#   paddock       runtime_type io.containerd.paddock.v2 (our shim, found on containerd's PATH)
#   paddock-runc  runtime_type io.containerd.runc.v2 (containerd's runc shim, BinaryName = paddock)
# integration/cri-client drives the CRI socket as the kubelet would, one pod per class.
# Usage: integration/cri.sh PADDOCK_BIN [SHIM_BIN]   (SHIM_BIN: containerd-shim-paddock-v2 next
# to PADDOCK_BIN by default; CRI_CLIENT: the client binary; E2E_CRI_CLASSES: the classes to run;
# E2E_CRI_RESTART=0: no containerd restart while the pod runs).
# Everything runs in a private mount namespace with its own config/root/state/socket; see lib.sh.
set -euo pipefail
E2E_SCRIPT=$(readlink -f "$0")
E2E_DIR=$(dirname "$E2E_SCRIPT")
. "$E2E_DIR/lib.sh"
# The cri-client puts every pod under this cgroup parent, as the kubelet uses /kubepods.
CG_ROOT=paddock-e2e-cri
E2E_CG_RE="^/sys/fs/cgroup/[^/]+(/[^/]+)?/$CG_ROOT(/|\$)"
E2E_FILES_RE='^(containerd|runc|paddock|pty[0-9]+|runc-process[0-9]+)$'
NS=k8s.io                             # the CRI plugin's containerd namespace
APP_IMAGE=docker.io/library/busybox:local
# The sandbox ("pause") container must keep running: busybox's sh alone would exit at once.
PAUSE_IMAGE=docker.io/paddock/pause:local
PAUSE_CMD='["sh","-c","trap \"exit 0\" TERM INT; sleep 2147483647 & wait"]'

# Processes of this mount namespace whose executable is $1 (zombies aside): the shims.
procs_of() {
    local exe=$1 me pid n=""
    me=$(readlink /proc/self/ns/mnt)
    for pid in /proc/[0-9]*; do
        [ "$(readlink "$pid/exe" 2>/dev/null)" = "$exe" ] || continue
        [ "$(readlink "$pid/ns/mnt" 2>/dev/null)" = "$me" ] || continue
        grep -q '^State:[[:space:]]*Z' "$pid/status" 2>/dev/null && continue
        n="$n ${pid#/proc/}"
    done
    echo $n
}

class_shim() { # CLASS -> the shim executable containerd starts for it
    case $1 in
        paddock) readlink -f "$E2E_SHIM" ;;
        *) readlink -f "$(command -v containerd-shim-runc-v2)" ;;
    esac
}

class_root() { # CLASS -> paddock's --root for the CRI namespace
    case $1 in
        paddock) echo "$E2E_TMP/paddock-root/$NS" ;;
        *) echo "$E2E_TMP/runc-root/$NS" ;;
    esac
}

empty_dir() { # NAME DIR: PASS when DIR is missing or empty
    local left
    left=$(ls -A "$2" 2>/dev/null || true)
    if [ -z "$left" ]; then pass "$1"; else fail "$1: $2 holds $(echo $left)"; fi
}

# containerd in the background, its pid in a file (a hook restarts it), until the CRI answers.
start_containerd() {
    local i
    rm -f "$E2E_TMP/containerd.sock"
    PATH="$(dirname "$E2E_SHIM"):$PATH" containerd --config "$E2E_TMP/config.toml" >>"$E2E_TMP/containerd.log" 2>&1 &
    echo $! >"$E2E_TMP/containerd.pid"
    for i in $(seq 1 100); do [ -S "$E2E_TMP/containerd.sock" ] && break; sleep 0.1; done
    for i in $(seq 1 50); do
        OUT=$("$CRI_CLIENT" --socket "$E2E_TMP/containerd.sock" version 2>&1) && break
        sleep 0.2
    done
}

stop_containerd() {
    local pid i
    pid=$(cat "$E2E_TMP/containerd.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

# Called by cri-client while the pod runs and after RemovePodSandbox (as `cri.sh STAGE POD_ID
# CONTAINER_ID...`); prints PASS/FAIL lines into the client's output.
hook() {
    local stage=$1 pod=$2 class=$CRI_CLASS shim pids i
    shift 2
    shim=$(class_shim "$class")
    case $stage in
    pod-running)
        pids=$(procs_of "$shim")
        if [ "$(echo $pids | wc -w)" = 1 ]; then pass "a pod of a sandbox and two containers is one $(basename "$shim") process ($pids)"; else
            fail "$(basename "$shim") processes for one pod: want 1, got '${pids}'"; fi
        for i in $pids; do note "shim $i: $(grep VmRSS /proc/$i/status | tr -s ' \t' ' ')"; done
        local listed
        listed=$("$E2E_BIN" --root "$(class_root "$class")" list -q 2>&1 | sort | tr '\n' ' ')
        local want
        want=$(printf '%s\n' "$pod" "$@" | sort | tr '\n' ' ')
        if [ "$listed" = "$want" ]; then pass "paddock list: the sandbox and both containers"; else
            fail "paddock list: got '$listed', want '$want'"; fi
        # A node restarts containerd (upgrades); the pod must carry on and be recovered.
        [ "${E2E_CRI_RESTART:-1}" = 1 ] || return 0
        stop_containerd
        start_containerd >/dev/null
        check_rc "containerd restarted while the pod runs; the CRI answers again" 0 \
            "$CRI_CLIENT" --socket "$E2E_TMP/containerd.sock" version
        pids=$(procs_of "$shim")
        if [ "$(echo $pids | wc -w)" = 1 ]; then pass "the pod's shim outlived containerd"; else
            fail "$(basename "$shim") processes after the restart: '${pids}'"; fi
        ;;
    pod-removed)
        for i in $(seq 1 50); do [ -z "$(procs_of "$shim")" ] && break; sleep 0.1; done
        pids=$(procs_of "$shim")
        if [ -z "$pids" ]; then pass "the pod's shim has exited"; else fail "shim processes left: $pids"; fi
        pids=$(procs_of "$E2E_BIN")
        if [ -z "$pids" ]; then pass "no paddock process left"; else fail "paddock processes left: $pids"; fi
        local id mounts=""
        for id in "$pod" "$@"; do mounts="$mounts$(grep -F "$id" /proc/self/mountinfo || true)"; done
        if [ -z "$mounts" ]; then pass "no mount of the pod left (rootfs, shm)"; else fail "mounts left: $mounts"; fi
        local cgs
        cgs=$(find /sys/fs/cgroup/*/$CG_ROOT /sys/fs/cgroup/*/*/$CG_ROOT -mindepth 2 -type d 2>/dev/null || true)
        if [ -z "$cgs" ]; then pass "no container cgroup left under */$CG_ROOT/pod*/"; else fail "cgroups left: $(echo $cgs)"; fi
        # The pod-level cgroups are the kubelet's to remove; do it as it would.
        find /sys/fs/cgroup -depth -type d -path "*/$CG_ROOT*" -exec rmdir {} + 2>/dev/null || true
        local socks
        socks=$(comm -13 "$E2E_TMP/sockets.before" <({ ls -A /run/containerd/s 2>/dev/null || true; } | sort))
        if [ -z "$socks" ]; then pass "no shim socket left in /run/containerd/s"; else
            fail "shim sockets left in /run/containerd/s: $(echo $socks)"; fi
        empty_dir "paddock state root empty" "$(class_root "$class")"
        empty_dir "no task bundle left" "$E2E_TMP/state/io.containerd.runtime.v2.task/$NS"
        empty_dir "no CRI sandbox state left" "$E2E_TMP/state/io.containerd.grpc.v1.cri/sandboxes"
        empty_dir "no CRI container record left" "$E2E_TMP/root/io.containerd.grpc.v1.cri/containers"
        ;;
    *) fail "unknown hook stage $stage" ;;
    esac
}

# One pod through CLASS; the client's PASS/FAIL lines are counted here, prefixed with the class.
run_class() {
    local class=$1 line start=$SECONDS failed=$E2E_FAIL
    export CRI_CLASS=$class
    { ls -A /run/containerd/s 2>/dev/null || true; } | sort >"$E2E_TMP/sockets.before"
    while IFS= read -r line; do
        case $line in
            PASS:*) pass "[$class] ${line#PASS: }" ;;
            FAIL:*) fail "[$class] ${line#FAIL: }" ;;
            "exit status: 0") ;;
            "exit status: "*) [ "$E2E_FAIL" != "$failed" ] || fail "[$class] cri-client: $line" ;;
            *) echo "$line" ;;
        esac
    done < <("$CRI_CLIENT" --socket "$E2E_TMP/containerd.sock" scenario --handler "$class" \
        --image "$APP_IMAGE" --work "$E2E_TMP/work" --hook "$E2E_SCRIPT" 2>&1; echo "exit status: $?")
    note "class $class: $((SECONDS - start))s"
}

inner() {
    local L=$E2E_TMP
    # containerd writes /run/containerd (shim sockets are hard-coded to /run/containerd/s),
    # /var/lib/containerd, and go's temp files; keep all of it private.
    private_mounts /run /var/lib/containerd /opt/containerd
    export TMPDIR=$L/tmp
    mkdir -p "$TMPDIR" "$L/cni/bin" "$L/cni/conf" "$L/work" "$L/fifo"
    # The paddock class's runtime options (runtimeoptions.v1 ConfigPath, read by the shim).
    cat >"$L/paddock-shim.toml" <<EOF
BinaryName = "$E2E_BIN"
Root = "$L/paddock-root"
EOF
    cat >"$L/config.toml" <<EOF
version = 2
root  = "$L/root"
state = "$L/state"
disabled_plugins = ["io.containerd.internal.v1.opt","io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$L/containerd.sock"
[debug]
  level = "debug"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # The CRI gives the sandbox oom_score_adj -998; without CAP_SYS_RESOURCE (not in this VM's
  # bounding set) only scores at or above containerd's own may be set.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$L/cni/bin"
    conf_dir = "$L/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "paddock"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.paddock]
      runtime_type = "io.containerd.paddock.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.paddock.options]
        ConfigPath = "$L/paddock-shim.toml"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.paddock-runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.paddock-runc.options]
        BinaryName = "$E2E_BIN"
        Root = "$L/runc-root"
EOF
    C=(ctr --address "$L/containerd.sock" -n $NS)
    trap 'inner_cleanup' EXIT
    start_containerd
    check_rc "CRI Version answers" 0 "$CRI_CLIENT" --socket "$L/containerd.sock" version
    note "$OUT"

    make_rootfs "$L/img/rootfs"
    make_oci_image "$L/img/rootfs" "$L/img" "$APP_IMAGE" '["sh"]' "$PAUSE_IMAGE" "$PAUSE_CMD"
    check_rc "ctr -n $NS images import (app and sandbox images)" 0 "${C[@]}" images import "$L/img/busybox-oci.tar"
    check_rc "both images unpacked" 0 "${C[@]}" images check
    expect_out "app image complete" "busybox:local.*complete"
    expect_out "sandbox image complete" "pause:local.*complete"

    local class
    for class in ${E2E_CRI_CLASSES:-paddock paddock-runc}; do
        if [ "$class" = paddock ] && [ ! -x "$E2E_SHIM" ]; then
            fail "[paddock] no shim binary at $E2E_SHIM"
            continue
        fi
        run_class "$class"
    done

    # The README's ctr line: our shim by runtime name, its options from a file.
    if [ -x "$E2E_SHIM" ]; then
        check_rc "ctr run --runtime io.containerd.paddock.v2 --runtime-config-path FILE" 0 \
            "${C[@]}" run --rm --runtime io.containerd.paddock.v2 --runtime-config-path "$L/paddock-shim.toml" \
            --cgroup "/$CG_ROOT/ctr-t1" --fifo-dir "$L/fifo" "$APP_IMAGE" ctr-t1 sh -c 'echo hi; exit 0'
        expect_out "ctr run through the shim: output is 'hi'" '^hi$'
        if [ -x "$(dirname "$E2E_SHIM")/paddock" ]; then
            check_rc "ctr run --runtime io.containerd.paddock.v2 (no options: paddock next to the shim)" 0 \
                "${C[@]}" run --rm --runtime io.containerd.paddock.v2 --cgroup "/$CG_ROOT/ctr-t2" \
                --fifo-dir "$L/fifo" "$APP_IMAGE" ctr-t2 sh -c 'echo hi; exit 0'
            expect_out "ctr run through the shim, no options: output is 'hi'" '^hi$'
        fi
        find /sys/fs/cgroup -depth -type d -path "*/$CG_ROOT*" -exec rmdir {} + 2>/dev/null || true
    fi

    OUT=$("${C[@]}" task ls -q 2>&1; "${C[@]}" container ls -q 2>&1)
    if [ -z "$OUT" ]; then pass "no tasks or containers left in containerd"; else fail "left in containerd: $(echo $OUT)"; fi
}

inner_cleanup() {
    local rc=$?
    set +e
    ctr_remove_all
    stop_containerd
    if [ "$E2E_FAIL" != 0 ] || [ -n "${E2E_VERBOSE:-}" ]; then
        echo "---- containerd.log, last errors ----"
        grep -E 'level=(error|warning)' "$E2E_TMP/containerd.log" | grep -v 'cni config' | tail -20
    fi
    inner_finish
    return $rc
}

case ${1:-} in
    --inner) inner; exit 0 ;;
    pod-running | pod-removed) hook "$@"; exit 0 ;;
esac
E2E_SHIM=${2:-$(dirname "$(readlink -f "${1:-.}")")/containerd-shim-paddock-v2}
E2E_SHIM=$(readlink -f "$E2E_SHIM" || echo "$E2E_SHIM")
CRI_CLIENT=$(readlink -f "${CRI_CLIENT:-$E2E_DIR/cri-client/target/debug/cri-client}")
[ -x "$CRI_CLIENT" ] || {
    echo "$CRI_CLIENT: not built (cargo build --locked --manifest-path integration/cri-client/Cargo.toml)" >&2
    exit 2
}
export E2E_SHIM CRI_CLIENT
e2e_main cri "${1:-}"
