//! Stats: the container's cgroup files read into containerd's metrics types
//! (io.containerd.cgroups.v1.Metrics on cgroup v1, io.containerd.cgroups.v2.Metrics on v2).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::MessageField;

const ROOT: &str = "/sys/fs/cgroup";

pub enum CgroupPaths {
    /// controller -> directory
    V1(HashMap<String, PathBuf>),
    V2(PathBuf),
}

/// Where the cgroups of `pid` are, from /proc/PID/cgroup. A pure v2 host has only the
/// "0::" line; on a v1 (or hybrid) host the v1 controllers are used.
pub fn cgroup_paths(pid: u32) -> Result<CgroupPaths> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .context("read the process's cgroups")?;
    parse_cgroups(&text, Path::new(ROOT).join("cgroup.controllers").exists())
}

fn parse_cgroups(text: &str, unified_root: bool) -> Result<CgroupPaths> {
    let mut v1 = HashMap::new();
    let mut v2 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if ctrls.is_empty() {
            v2 = Some(Path::new(ROOT).join(path));
            continue;
        }
        for c in ctrls.split(',') {
            let c = c.trim_start_matches("name=");
            // Joint mounts such as cpu,cpuacct live at /sys/fs/cgroup/cpu,cpuacct.
            let dir = Path::new(ROOT)
                .join(ctrls.trim_start_matches("name="))
                .join(path);
            v1.insert(c.to_string(), dir);
        }
    }
    if unified_root || v1.is_empty() {
        return v2.map(CgroupPaths::V2).context("no cgroup v2 entry");
    }
    Ok(CgroupPaths::V1(v1))
}

pub fn collect(pid: u32) -> Result<Any> {
    let any = match cgroup_paths(pid)? {
        CgroupPaths::V1(map) => containerd_shim::util::convert_to_any(Box::new(metrics_v1(&map))),
        CgroupPaths::V2(dir) => containerd_shim::util::convert_to_any(Box::new(metrics_v2(&dir))),
    };
    any.map_err(|e| anyhow::anyhow!("encode metrics: {e}"))
}

/// A number file; "max" (no limit) reads as 0, as containerd's own readers report it.
fn read_u64(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// "key value" lines.
fn read_kv(path: &Path) -> HashMap<String, u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn metrics_v1(map: &HashMap<String, PathBuf>) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    if let Some(d) = map.get("pids") {
        m.pids = MessageField::some(v1::PidsStat {
            current: read_u64(&d.join("pids.current")),
            limit: read_u64(&d.join("pids.max")),
            ..Default::default()
        });
    }
    if let Some(d) = map.get("cpuacct") {
        let usage = v1::CPUUsage {
            total: read_u64(&d.join("cpuacct.usage")),
            kernel: read_u64(&d.join("cpuacct.usage_sys")),
            user: read_u64(&d.join("cpuacct.usage_user")),
            per_cpu: std::fs::read_to_string(d.join("cpuacct.usage_percpu"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect(),
            ..Default::default()
        };
        let t = map
            .get("cpu")
            .map(|c| read_kv(&c.join("cpu.stat")))
            .unwrap_or_default();
        let g = |k: &str| t.get(k).copied().unwrap_or(0);
        m.cpu = MessageField::some(v1::CPUStat {
            usage: MessageField::some(usage),
            throttling: MessageField::some(v1::Throttle {
                periods: g("nr_periods"),
                throttled_periods: g("nr_throttled"),
                throttled_time: g("throttled_time"),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if let Some(d) = map.get("memory") {
        let s = read_kv(&d.join("memory.stat"));
        let g = |k: &str| s.get(k).copied().unwrap_or(0);
        let entry = |prefix: &str| {
            MessageField::some(v1::MemoryEntry {
                limit: read_u64(&d.join(format!("{prefix}.limit_in_bytes"))),
                usage: read_u64(&d.join(format!("{prefix}.usage_in_bytes"))),
                max: read_u64(&d.join(format!("{prefix}.max_usage_in_bytes"))),
                failcnt: read_u64(&d.join(format!("{prefix}.failcnt"))),
                ..Default::default()
            })
        };
        m.memory = MessageField::some(v1::MemoryStat {
            cache: g("cache"),
            rss: g("rss"),
            rss_huge: g("rss_huge"),
            mapped_file: g("mapped_file"),
            dirty: g("dirty"),
            writeback: g("writeback"),
            pg_pg_in: g("pgpgin"),
            pg_pg_out: g("pgpgout"),
            pg_fault: g("pgfault"),
            pg_maj_fault: g("pgmajfault"),
            inactive_anon: g("inactive_anon"),
            active_anon: g("active_anon"),
            inactive_file: g("inactive_file"),
            active_file: g("active_file"),
            unevictable: g("unevictable"),
            hierarchical_memory_limit: g("hierarchical_memory_limit"),
            hierarchical_swap_limit: g("hierarchical_memsw_limit"),
            total_cache: g("total_cache"),
            total_rss: g("total_rss"),
            total_rss_huge: g("total_rss_huge"),
            total_mapped_file: g("total_mapped_file"),
            total_dirty: g("total_dirty"),
            total_writeback: g("total_writeback"),
            total_pg_pg_in: g("total_pgpgin"),
            total_pg_pg_out: g("total_pgpgout"),
            total_pg_fault: g("total_pgfault"),
            total_pg_maj_fault: g("total_pgmajfault"),
            total_inactive_anon: g("total_inactive_anon"),
            total_active_anon: g("total_active_anon"),
            total_inactive_file: g("total_inactive_file"),
            total_active_file: g("total_active_file"),
            total_unevictable: g("total_unevictable"),
            usage: entry("memory"),
            swap: entry("memory.memsw"),
            kernel: entry("memory.kmem"),
            kernel_tcp: entry("memory.kmem.tcp"),
            ..Default::default()
        });
        let oom = read_kv(&d.join("memory.oom_control"));
        m.memory_oom_control = MessageField::some(v1::MemoryOomControl {
            oom_kill_disable: oom.get("oom_kill_disable").copied().unwrap_or(0),
            under_oom: oom.get("under_oom").copied().unwrap_or(0),
            oom_kill: oom.get("oom_kill").copied().unwrap_or(0),
            ..Default::default()
        });
    }
    m
}

fn metrics_v2(d: &Path) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    m.pids = MessageField::some(v2::PidsStat {
        current: read_u64(&d.join("pids.current")),
        limit: read_u64(&d.join("pids.max")),
        ..Default::default()
    });
    let c = read_kv(&d.join("cpu.stat"));
    let g = |k: &str| c.get(k).copied().unwrap_or(0);
    m.cpu = MessageField::some(v2::CPUStat {
        usage_usec: g("usage_usec"),
        user_usec: g("user_usec"),
        system_usec: g("system_usec"),
        nr_periods: g("nr_periods"),
        nr_throttled: g("nr_throttled"),
        throttled_usec: g("throttled_usec"),
        nr_bursts: g("nr_bursts"),
        burst_usec: g("burst_usec"),
        ..Default::default()
    });
    let s = read_kv(&d.join("memory.stat"));
    let g = |k: &str| s.get(k).copied().unwrap_or(0);
    m.memory = MessageField::some(v2::MemoryStat {
        anon: g("anon"),
        file: g("file"),
        kernel_stack: g("kernel_stack"),
        slab: g("slab"),
        sock: g("sock"),
        shmem: g("shmem"),
        file_mapped: g("file_mapped"),
        file_dirty: g("file_dirty"),
        file_writeback: g("file_writeback"),
        anon_thp: g("anon_thp"),
        inactive_anon: g("inactive_anon"),
        active_anon: g("active_anon"),
        inactive_file: g("inactive_file"),
        active_file: g("active_file"),
        unevictable: g("unevictable"),
        slab_reclaimable: g("slab_reclaimable"),
        slab_unreclaimable: g("slab_unreclaimable"),
        pgfault: g("pgfault"),
        pgmajfault: g("pgmajfault"),
        workingset_refault: g("workingset_refault"),
        workingset_activate: g("workingset_activate"),
        workingset_nodereclaim: g("workingset_nodereclaim"),
        pgrefill: g("pgrefill"),
        pgscan: g("pgscan"),
        pgsteal: g("pgsteal"),
        pgactivate: g("pgactivate"),
        pgdeactivate: g("pgdeactivate"),
        pglazyfree: g("pglazyfree"),
        pglazyfreed: g("pglazyfreed"),
        thp_fault_alloc: g("thp_fault_alloc"),
        thp_collapse_alloc: g("thp_collapse_alloc"),
        usage: read_u64(&d.join("memory.current")),
        usage_limit: read_u64(&d.join("memory.max")),
        swap_usage: read_u64(&d.join("memory.swap.current")),
        swap_limit: read_u64(&d.join("memory.swap.max")),
        max_usage: read_u64(&d.join("memory.peak")),
        ..Default::default()
    });
    let e = read_kv(&d.join("memory.events"));
    let g = |k: &str| e.get(k).copied().unwrap_or(0);
    m.memory_events = MessageField::some(v2::MemoryEvents {
        low: g("low"),
        high: g("high"),
        max: g("max"),
        oom: g("oom"),
        oom_kill: g("oom_kill"),
        ..Default::default()
    });
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_paths() {
        let text = "12:memory:/ns/c1\n4:cpu,cpuacct:/ns/c1\n1:name=systemd:/x\n0::/ns/c1\n";
        let CgroupPaths::V1(m) = parse_cgroups(text, false).unwrap() else {
            panic!("v1 expected")
        };
        assert_eq!(m["memory"], Path::new("/sys/fs/cgroup/memory/ns/c1"));
        assert_eq!(m["cpuacct"], Path::new("/sys/fs/cgroup/cpu,cpuacct/ns/c1"));
        let CgroupPaths::V2(p) = parse_cgroups("0::/k/c2\n", true).unwrap() else {
            panic!("v2 expected")
        };
        assert_eq!(p, Path::new("/sys/fs/cgroup/k/c2"));
    }
}
