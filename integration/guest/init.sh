#!/bin/busybox sh
# The guest's first process (in the initramfs): loads the modules, mounts the host's root
# (read-only 9p) under a tmpfs overlay, switches to it and runs guest-init.sh there.
# After the 9p/overlay root: what CRIU needs (nftables and conntrack netlink, socket diag),
# so that checkpoint/restore can be tested here.
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci 9pnet 9pnet_virtio netfs fscache 9p overlay crc32c_generic libcrc32c nfnetlink nf_tables nf_defrag_ipv4 nf_defrag_ipv6 nf_conntrack nf_conntrack_netlink unix_diag inet_diag tcp_diag udp_diag netlink_diag af_packet_diag"
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
die() { echo "guest init: $*"; echo "PADDOCK_GUEST_EXIT=1"; poweroff -f; }
for m in $MODULES; do insmod "/modules/$m.ko" || die "insmod $m"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /host || die "mount 9p"
mount -t tmpfs -o mode=0755 rw /rw || die "mount tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot ||
    die "mount overlay"
guest_init=$(echo "$paddock_job" | base64 -d | head -1)
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/bash "$guest_init"
