#!/bin/bash
# Runs as the guest's PID 1 on the overlay root: mounts the pseudo filesystems a host has
# (cgroup2 alone at /sys/fs/cgroup), runs the job given on the kernel command line, prints
# its exit status where boot.sh looks for it, and powers off.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t mqueue mqueue /dev/mqueue
# The job (guest-init, job script, args) as boot.sh passed it.
mapfile -t argv <<<"$(echo "$paddock_job" | base64 -d)"
unset paddock_job
# /tmp and /run get fresh tmpfs, as on a booted host. The job's own directories under them
# (a checkout in /tmp, as CI may use) are bound back from the host's view.
keep=("$(cd "$(dirname "${argv[0]}")/../.." && pwd)" "$(dirname "${argv[1]}")")
mkdir -p /.host
mount --bind / /.host
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t tmpfs -o mode=0755 run /run
for p in "${keep[@]}"; do
    case $p in
    /tmp/* | /run/*) mkdir -p "$p" && mount --bind "/.host$p" "$p" ;;
    esac
done
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
ln -sf /proc/self/fd /dev/fd 2>/dev/null
hostname paddock-guest
# Loopback up, as on a booted host (CRIU probes TCP repair over it).
ip link set lo up 2>/dev/null
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
# The host's environment variables a job needs do not cross: boot.sh passes paths only.
# Controllers for the tests: the root's subtree_control as systemd would set it.
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
done
echo "guest: $(uname -r), $(nproc) cpus, cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
cd "$(dirname "${argv[1]}")" || true
bash "${argv[@]:1}"
rc=$?
echo "PADDOCK_GUEST_EXIT=$rc"
sync
echo o > /proc/sysrq-trigger
read -r -t 10 _ </dev/console || true
