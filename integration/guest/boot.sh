#!/bin/bash
# Boots Debian's own kernel (the Debian 12 package, never installed on the host: unpacked
# into the build dir) under QEMU software emulation with the host's root shared read-only
# over virtio-9p under a tmpfs overlay, runs one job script inside, powers off, and exits
# with the job's exit status. The guest is pure cgroup v2 (cgroup_no_v1=all).
#
#   boot.sh JOB_SCRIPT [ARG...]      the script and its args are paths the guest sees as on the host
#
# GUEST_SYSTEMD=1: the host's systemd runs as PID 1 (with dbus) and the job as its service
# (systemd-init.sh), on cgroup v2 (GUEST_SYSTEMD=v1: systemd's legacy v1 layout); by default guest-init.sh runs the job directly. GUEST_APPEND: more
# kernel parameters (e.g. systemd.show_status=1 systemd.log_target=console to debug a boot).
#
# KVM is not used: /dev/kvm on these machines hangs a stock kernel. Nothing of the guest
# touches the host: the host root is read-only for it, and every write lands in guest memory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${GUEST_WORK:-$here/../../target/guest}
mkdir -p "$work"
work=$(cd "$work" && pwd)
[ $# -ge 1 ] || { echo "usage: boot.sh JOB_SCRIPT [ARG...]" >&2; exit 2; }

apt_install() {
    local missing=""
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
    if [ -n "$missing" ]; then
        echo "installing:$missing"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
}
# apparmor: apparmor_parser, which the AppArmor tests run in the guest to load their profiles.
apt_install qemu-system-x86 busybox-static cpio apparmor

# The kernel: the package linux-image-amd64 points at, unpacked (no hooks, no /boot).
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
if [ -z "$kpkg" ]; then
    apt-get update -qq
    kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
fi
kver=${kpkg#linux-image-}
modules=$(sed -n 's/^MODULES="\(.*\)"/\1/p' "$here/init.sh")
kdir=$work/$kpkg
missing_module() { for m in $modules; do [ -f "$kdir/modules/$m.ko" ] || return 0; done; return 1; }
if [ ! -f "$kdir/vmlinuz" ] || missing_module; then
    # Only the kernel and the initramfs's modules are kept of the unpacked package.
    rm -rf "$kdir" "$work/dl"
    mkdir -p "$work/dl/x" "$kdir/modules"
    # A stale package list may name a version the archive no longer has: update, retry.
    if ! (cd "$work/dl" && apt-get download "$kpkg" >/dev/null 2>&1); then
        apt-get update -qq
        kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
        kver=${kpkg#linux-image-}
        kdir=$work/$kpkg
        mkdir -p "$kdir/modules"
        (cd "$work/dl" && apt-get download "$kpkg" >/dev/null 2>&1) || { echo "cannot download $kpkg" >&2; exit 1; }
    fi
    dpkg-deb -x "$work/dl/${kpkg}_"*.deb "$work/dl/x"
    for m in $modules; do
        f=$(find "$work/dl/x/lib/modules/$kver/kernel" -name "$m.ko" | head -1)
        [ -n "$f" ] || { echo "module $m not in $kpkg" >&2; exit 1; }
        cp "$f" "$kdir/modules/"
    done
    cp "$work/dl/x/boot/vmlinuz-$kver" "$kdir/vmlinuz"
    rm -rf "$work/dl"
fi

# The initramfs: busybox, those modules and init.sh.
initrd=$work/initrd-$kver.cpio.gz
if [ ! -f "$initrd" ] || [ "$here/init.sh" -nt "$initrd" ]; then
    tree=$(mktemp -d "$work/initrd.XXXXXX")
    mkdir -p "$tree/bin" "$tree/proc" "$tree/sys" "$tree/dev" "$tree/host" "$tree/rw" "$tree/newroot"
    cp /bin/busybox "$tree/bin/busybox"
    cp "$here/init.sh" "$tree/init"
    chmod 0755 "$tree/init"
    cp -r "$kdir/modules" "$tree/modules"
    (cd "$tree" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
    rm -rf "$tree"
fi

job=$(readlink -f "$1")
shift
# guest-init.sh, the job and its arguments reach the guest as one kernel parameter.
guest_init=$here/guest-init.sh
cgroups=cgroup_no_v1=all
append=
if [ "${GUEST_SYSTEMD:-0}" != 0 ]; then
    guest_init=$here/systemd-init.sh
    # Its own target, not default.target (whose wants the host's packages fill).
    append="systemd.unit=paddock.target"
    # GUEST_SYSTEMD=v1: systemd's legacy cgroup v1 layout instead.
    [ "$GUEST_SYSTEMD" = v1 ] && cgroups=systemd.unified_cgroup_hierarchy=0
fi
args=$(printf '%s\n' "$guest_init" "$job" "$@" | base64 -w0)
log=$work/console.log
cpus=$(nproc)
[ "$cpus" -gt 4 ] && cpus=4
set +e
timeout "${GUEST_TIMEOUT:-2400}" qemu-system-x86_64 \
    -machine q35 -accel tcg,thread=multi -cpu max -smp "$cpus" -m "${GUEST_MEM:-3072}" \
    -kernel "$kdir/vmlinuz" -initrd "$initrd" \
    -append "console=ttyS0 $cgroups panic=-1 quiet loglevel=3 paddock_job=$args $append ${GUEST_APPEND:-}" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -nographic -no-reboot -nic none -serial mon:stdio </dev/null 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
rc=$(sed -n 's/^PADDOCK_GUEST_EXIT=\([0-9]*\).*/\1/p' "$log" | tail -1)
if [ -z "$rc" ]; then
    echo "guest: no exit status (qemu exited $status); see $log" >&2
    exit 1
fi
exit "$rc"
