#!/bin/bash
# The guest's PID 1 on the overlay root in boot.sh's systemd mode (GUEST_SYSTEMD=1), in
# place of guest-init.sh: writes a small boot target into the overlay's /etc (basic.target,
# dbus and a service running the job), masks what is slow or useless under emulation
# (udev coldplug, timers, apparmor, timesyncd, sysusers, tmpfiles, which walks the 9p root
# for minutes), and execs the host's systemd.
# The job service prints PADDOCK_GUEST_EXIT= as guest-init.sh does and powers off at once.
mapfile -t argv <<<"$(echo "$paddock_job" | base64 -d)"
unset paddock_job
# Copied from a container image: with it systemd believes it is in a container.
rm -f /.dockerenv
u=/etc/systemd/system
for m in systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service \
    systemd-udevd-control.socket systemd-udevd-kernel.socket timers.target apparmor.service \
    systemd-timesyncd.service systemd-sysusers.service systemd-tmpfiles-setup.service; do
    ln -sf /dev/null "$u/$m"
done
{
    echo '#!/bin/bash'
    echo 'exec >/dev/console 2>&1'
    echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root'
    echo 'echo "guest: $(uname -r), $(nproc) cpus, systemd $(systemctl --version | head -1 | cut -d" " -f2) as PID 1"'
    printf 'cd %q || true\n' "$(dirname "${argv[1]}")"
    printf '%q ' bash "${argv[@]:1}"
    echo
    echo 'echo "PADDOCK_GUEST_EXIT=$?"'
    echo 'sync'
} >/etc/paddock-job.sh
cat >"$u/paddock-job.service" <<'UNIT'
[Unit]
Description=paddock guest job
Requires=dbus.service
After=dbus.service basic.target
SuccessAction=poweroff-immediate
FailureAction=poweroff-immediate
[Service]
Type=oneshot
ExecStart=/bin/bash /etc/paddock-job.sh
UNIT
cat >"$u/paddock.target" <<'UNIT'
[Unit]
Description=paddock guest
Requires=basic.target dbus.service paddock-job.service
After=basic.target
AllowIsolate=yes
UNIT
hostname paddock-guest 2>/dev/null
exec /lib/systemd/systemd
