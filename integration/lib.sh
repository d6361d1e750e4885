# Shared helpers for integration/containerd.sh, cri.sh and podman.sh (sourced, not run).
#
# Model: the script is started on the host ("outer"). It records the host's state, then re-runs
# itself ("inner") under `unshare --mount --propagation private`, where tmpfs mounts hide every
# host directory containerd/podman would write to. When the inner part ends (or fails), the outer
# part kills whatever is left of it (processes in its mount namespace, processes in cgroups it
# created), removes the cgroups it created, and checks the host is as it was before.

E2E_PASS=0
E2E_FAIL=0

pass() { E2E_PASS=$((E2E_PASS + 1)); echo "PASS: $*"; }
fail() { E2E_FAIL=$((E2E_FAIL + 1)); echo "FAIL: $*"; }
note() { echo "  .. $*"; }

# check NAME EXPECTED_RC CMD...: run CMD, capture output in $OUT and rc in $RC.
check_rc() {
    local name=$1 want=$2; shift 2
    set +e
    OUT=$("$@" 2>&1)
    RC=$?
    set -e
    if [ "$RC" = "$want" ]; then pass "$name (exit $RC)"; else
        fail "$name: exit $RC, want $want; output: $(printf %s "$OUT" | tail -5)"; fi
}

# expect_out NAME REGEX: check the last $OUT against an extended regex.
expect_out() {
    if printf %s "$OUT" | grep -Eq -- "$2"; then pass "$1"; else
        fail "$1: output does not match /$2/: $(printf %s "$OUT" | tail -5)"; fi
}

summary() {
    echo "$E2E_PASS passed, $E2E_FAIL failed"
    [ "$E2E_FAIL" = 0 ]
}

# Busybox rootfs from Debian's busybox-static; a tar of it for podman import.
make_rootfs() {
    local r=$1
    mkdir -p "$r"/{bin,etc,proc,sys,dev,tmp,root,run}
    cp /bin/busybox "$r/bin/"
    local a
    for a in $("$r/bin/busybox" --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$r/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
}

# OCI image layout tar with one uncompressed layer (integration.md 4.1), holding one image per
# NAME CMD_JSON pair over the same layer; without pairs, docker.io/library/busybox:local running sh.
make_oci_image() { # ROOTFS OUTDIR [NAME CMD_JSON]... -> OUTDIR/busybox-oci.tar
    local r=$1 o=$2 b=$2/oci/blobs/sha256 layer cfg man ls cs ms manifests=""
    shift 2
    [ $# -gt 0 ] || set -- docker.io/library/busybox:local '["sh"]'
    mkdir -p "$b"
    tar --numeric-owner --owner=0 --group=0 -C "$r" -cf "$o/layer.tar" .
    layer=$(sha256sum "$o/layer.tar" | cut -d' ' -f1); ls=$(stat -c %s "$o/layer.tar")
    mv "$o/layer.tar" "$b/$layer"
    while [ $# -ge 2 ]; do
        printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
            "$2" "$layer" >"$o/cfg"
        cfg=$(sha256sum "$o/cfg" | cut -d' ' -f1); cs=$(stat -c %s "$o/cfg"); mv "$o/cfg" "$b/$cfg"
        printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
            "$cfg" "$cs" "$layer" "$ls" >"$o/man"
        man=$(sha256sum "$o/man" | cut -d' ' -f1); ms=$(stat -c %s "$o/man"); mv "$o/man" "$b/$man"
        manifests="$manifests${manifests:+,}$(printf '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}' \
            "$man" "$ms" "$1" "${1##*:}")"
        shift 2
    done
    printf '{"schemaVersion":2,"manifests":[%s]}' "$manifests" >"$o/oci/index.json"
    echo '{"imageLayoutVersion":"1.0.0"}' >"$o/oci/oci-layout"
    tar -C "$o/oci" -cf "$o/busybox-oci.tar" oci-layout index.json blobs
}

# ---- host snapshot / sweep (outer side) ----

host_snapshot() { # DIR: record what the host looks like now
    local d=$1
    wc -l </proc/self/mountinfo >"$d/mountinfo.count"
    find /sys/fs/cgroup -mindepth 1 -type d 2>/dev/null | sort >"$d/cgroups"
    ls -A /run | sort >"$d/run"
    ls -A /tmp | sort >"$d/tmp"
    ls -A /dev/shm | sort >"$d/shm"
}

# BEFORE_FILE: cgroup dirs that exist now and did not before and match $E2E_CG_RE (the parents
# this caller uses; other sessions on the box may make cgroups of their own), deepest first.
new_cgroups() {
    comm -13 "$1" <(find /sys/fs/cgroup -mindepth 1 -type d 2>/dev/null | sort) |
        { grep -E -- "$E2E_CG_RE" || true; } | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-
}

# Kill every process left by the inner run: processes in its mount namespace (daemon, shims,
# conmon) and processes in cgroups created since the snapshot (containers).
host_sweep() { # SNAPDIR MNTNS
    local d=$1 ns=$2 pid cg i
    for i in 1 2 3 4 5 6 7 8 9 10; do
        local victims=""
        if [ -n "$ns" ]; then
            for pid in /proc/[0-9]*; do
                pid=${pid#/proc/}
                [ "$pid" = $$ ] && continue
                [ "$(readlink /proc/$pid/ns/mnt 2>/dev/null)" = "$ns" ] && victims="$victims $pid"
            done
        fi
        while read -r cg; do
            [ -n "$cg" ] || continue
            [ -f "$cg/freezer.state" ] && echo THAWED >"$cg/freezer.state" 2>/dev/null || true
            [ -f "$cg/cgroup.freeze" ] && echo 0 >"$cg/cgroup.freeze" 2>/dev/null || true
            [ -f "$cg/cgroup.procs" ] && victims="$victims $(cat "$cg/cgroup.procs" 2>/dev/null | tr '\n' ' ')"
        done < <(new_cgroups "$d/cgroups")
        victims=$(printf "%s\n" $victims | sort -un | tr "\n" " " | sed "s/ *$//")
        [ -z "$victims" ] && break
        echo "cleanup: killing leftover pids: $victims"
        kill -9 $victims 2>/dev/null || true
        sleep 0.5
    done
    local cgs
    cgs=$(new_cgroups "$d/cgroups" | sed 's#^/sys/fs/cgroup/##')
    [ -z "$cgs" ] || echo "cleanup: removing cgroups the callers left: $(echo $cgs)"
    for i in 1 2 3 4 5 6 7 8 9 10; do
        local left=0
        while read -r cg; do
            [ -n "$cg" ] || continue
            rmdir "$cg" 2>/dev/null || left=1
        done < <(new_cgroups "$d/cgroups")
        [ $left = 0 ] && break
        sleep 0.5
    done
}

host_verify() { # SNAPDIR: PASS/FAIL lines comparing the host with the snapshot
    local d=$1 now
    now=$(wc -l </proc/self/mountinfo)
    if [ "$now" = "$(cat "$d/mountinfo.count")" ]; then pass "host: mountinfo unchanged ($now lines)"; else
        fail "host: mountinfo has $now lines, had $(cat "$d/mountinfo.count")"; fi
    local procs
    # Zombies are ignored: exited shims are re-parented to PID 1, which reaps them when it likes.
    procs=$(ps -eo pid=,stat=,comm= | awk '$2 !~ /^Z/ && $3 ~ /^(containerd|containerd-shim|conmon|podman)$/' || true)
    if [ -z "$procs" ]; then pass "host: no containerd/shim/conmon/podman processes"; else
        fail "host: processes left: $(echo $procs)"; fi
    local cgs
    cgs=$(new_cgroups "$d/cgroups")
    if [ -z "$cgs" ]; then pass "host: no new cgroup directories"; else fail "host: new cgroups: $(echo $cgs)"; fi
    # Only names a caller would make: other sessions on the box may use /tmp and /run too.
    local x
    for x in run tmp shm; do
        local path=/$x; [ $x = shm ] && path=/dev/shm
        local diff
        diff=$(comm -3 "$d/$x" <(ls -A $path | sort) | sed 's/^[[:space:]]*//' |
            { grep -E -- "$E2E_FILES_RE" || true; })
        if [ -z "$diff" ]; then pass "host: nothing new in $path"; else fail "host: $path changed: $(echo $diff)"; fi
    done
}

# e2e_main NAME PADDOCK_BIN: outer driver. Calls `inner` (defined by the script) in a private
# mount namespace with E2E_TMP, E2E_BIN set; inner prints PASS/FAIL lines and writes its counts.
e2e_main() {
    local name=$1 bin=${2:-}
    [ -n "$bin" ] || { echo "usage: $0 /path/to/paddock" >&2; exit 2; }
    [ -x "$bin" ] || { echo "$bin: not executable" >&2; exit 2; }
    [ "$(id -u)" = 0 ] || { echo "$0: needs root" >&2; exit 2; }
    E2E_BIN=$(readlink -f "$bin")
    E2E_TMP=$(mktemp -d /tmp/paddock-e2e-$name.XXXXXX)
    export E2E_BIN E2E_TMP
    mkdir -p "$E2E_TMP/snap"
    host_snapshot "$E2E_TMP/snap"
    local start=$SECONDS
    trap 'e2e_on_exit' EXIT
    trap 'exit 130' INT TERM
    set +e
    # In the background so that a signal to this shell runs the cleanup trap at once.
    unshare --mount --propagation private -- bash "$E2E_SCRIPT" --inner &
    wait $!
    local rc=$?
    set -e
    if [ -f "$E2E_TMP/counts" ]; then
        read -r p f <"$E2E_TMP/counts"
        E2E_PASS=$((E2E_PASS + p)); E2E_FAIL=$((E2E_FAIL + f))
    fi
    # The inner part ends with `exit 0`: anything else is a stop half-way (set -e), even when its
    # EXIT trap has written the counts so far.
    [ $rc = 0 ] || fail "inner part exited $rc before finishing"
    e2e_outer_cleanup
    trap - EXIT
    host_verify "$E2E_TMP/snap"
    echo "time: $((SECONDS - start))s"
    if [ "$E2E_FAIL" != 0 ] && [ -n "${E2E_KEEP:-}" ]; then echo "kept $E2E_TMP"; else rm -rf "$E2E_TMP"; fi
    summary
}

e2e_outer_cleanup() {
    [ -n "${E2E_TMP:-}" ] && [ -d "$E2E_TMP/snap" ] || return 0
    [ -f "$E2E_TMP/swept" ] && return 0
    host_sweep "$E2E_TMP/snap" "$(cat "$E2E_TMP/mntns" 2>/dev/null || true)"
    touch "$E2E_TMP/swept"
}

e2e_on_exit() { # interrupted or failed before the end: sweep, then drop the temp dir
    local rc=$?
    e2e_outer_cleanup
    [ -n "${E2E_KEEP:-}" ] || rm -rf "$E2E_TMP"
    exit $rc
}

# Inside the namespace: hide host dirs the callers write to behind tmpfs.
private_mounts() {
    local d
    for d in "$@"; do
        mkdir -p "$d"
        mount -t tmpfs -o mode=0755 tmpfs "$d"
    done
    readlink /proc/self/ns/mnt >"$E2E_TMP/mntns"
}

# Kills and deletes every task, then removes every container, that ctr (the array C) lists.
ctr_remove_all() {
    local c
    for c in $("${C[@]}" task ls -q 2>/dev/null); do
        "${C[@]}" task kill -s SIGKILL "$c" >/dev/null 2>&1; sleep 0.2
        "${C[@]}" task delete -f "$c" >/dev/null 2>&1
    done
    for c in $("${C[@]}" container ls -q 2>/dev/null); do "${C[@]}" container rm "$c" >/dev/null 2>&1; done
}

inner_finish() {
    echo "$E2E_PASS $E2E_FAIL" >"$E2E_TMP/counts"
}

# DIR [LEVEL]: DIR/config.toml for a containerd of the test's own (root, state and socket
# under DIR; no CRI), its log at LEVEL when given.
ctrd_config() {
    cat >"$1/config.toml" <<EOT
version = 2
root  = "$1/root"
state = "$1/state"
disabled_plugins = ["io.containerd.grpc.v1.cri","io.containerd.internal.v1.opt","io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$1/containerd.sock"
EOT
    if [ -n "${2:-}" ]; then printf '[debug]\n  level = "%s"\n' "$2" >>"$1/config.toml"; fi
}

# EXIT trap of a ctr test: its containers, then containerd (CTRD_PID), whose last errors
# are shown when a check failed (or with E2E_VERBOSE), then the counts.
ctrd_cleanup() {
    local rc=$?
    set +e
    ctr_remove_all
    kill "$CTRD_PID" 2>/dev/null; wait "$CTRD_PID" 2>/dev/null
    if [ "$E2E_FAIL" != 0 ] || [ -n "${E2E_VERBOSE:-}" ]; then
        echo "---- containerd.log, last errors ----"
        grep -E 'level=(error|warning)' "$E2E_TMP/containerd.log" | tail -15
    fi
    inner_finish
    return $rc
}
