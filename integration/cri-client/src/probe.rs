//! What the scenario reads from inside a container, and how it reads it.

/// Prints the container's own cgroup limits as `memory=N cpu=QUOTA/PERIOD shares=N` (cgroup v1)
/// or `memory=N cpu=QUOTA/PERIOD` (cgroup v2, where shares become a weight). The container sees
/// its own cgroup at /sys/fs/cgroup, as runc mounts it.
pub const CGROUP_LIMITS: &str = r#"
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  read q p </sys/fs/cgroup/cpu.max
  echo "memory=$(cat /sys/fs/cgroup/memory.max) cpu=$q/$p"
else
  echo "memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)" \
    "cpu=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)/$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)" \
    "shares=$(cat /sys/fs/cgroup/cpu/cpu.shares)"
fi
"#;

/// The line CGROUP_LIMITS should print for these limits on the cgroup version it reports.
pub fn expected_limits(seen: &str, memory: i64, quota: i64, period: i64, shares: i64) -> String {
    if seen.contains("shares=") {
        format!("memory={memory} cpu={quota}/{period} shares={shares}")
    } else {
        format!("memory={memory} cpu={quota}/{period}")
    }
}

/// The value of one `Name:\tvalue` line of /proc/PID/status.
pub fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == name).then(|| v.trim())
    })
}

/// A capability mask as /proc/PID/status prints it.
pub fn cap_mask(bits: &[u32]) -> String {
    format!("{:016x}", bits.iter().fold(0u64, |m, b| m | 1 << b))
}

/// containerd's default capability set for a non-privileged CRI container (the Docker set).
pub const DEFAULT_CAPS: &[u32] = &[
    0,  // CHOWN
    1,  // DAC_OVERRIDE
    3,  // FOWNER
    4,  // FSETID
    5,  // KILL
    6,  // SETGID
    7,  // SETUID
    8,  // SETPCAP
    10, // NET_BIND_SERVICE
    13, // NET_RAW
    18, // SYS_CHROOT
    27, // MKNOD
    29, // AUDIT_WRITE
    31, // SETFCAP
];
pub const CAP_NET_BIND_SERVICE: u32 = 10;
