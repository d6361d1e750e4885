//! Pure cgroup v2: making the cgroup with its controllers delegated, and
//! linux.resources as v2 file writes, converting v1 values the way runc and
//! crun document it (shares -> cpu.weight, blkio weight -> io.weight,
//! memory+swap -> memory.swap.max).

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::resources::{page_size, Write};
use super::v1::rdma_line;
use super::Made;

const F: &str = "linux.resources";

/// mkdir each level below `mount` and enable every available controller in
/// each parent's cgroup.subtree_control (a controller that cannot be enabled
/// is left out; asking for its files later is then a clear error). What it
/// makes and enables is recorded in `made`, to be undone if create fails.
pub fn create_delegating(mount: &Path, rel: &Path, made: &mut Made) -> Result<()> {
    let mut cur = mount.to_path_buf();
    for c in rel.components() {
        enable_all(&cur, made);
        cur.push(c);
        match fs::create_dir(&cur) {
            Ok(()) => made.dirs.push(cur.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("create cgroup {}", cur.display())),
        }
    }
    Ok(())
}

/// Enables in `dir`'s subtree_control each of its controllers not yet enabled.
fn enable_all(dir: &Path, made: &mut Made) {
    let avail = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    for ctrl in avail.split_whitespace() {
        if !enabled.split_whitespace().any(|e| e == ctrl)
            && fs::write(dir.join("cgroup.subtree_control"), format!("+{ctrl}")).is_ok()
        {
            made.enabled.push((dir.to_path_buf(), ctrl.to_string()));
        }
    }
}

/// Whether `r` sets limits of domain controllers (runc's list: memory, io, cpu,
/// hugetlb; unified keys do not count), which a threaded cgroup cannot have.
pub fn uses_domain_controllers(r: &LinuxResources) -> bool {
    let nonzero = |v: Option<i64>| v.is_some_and(|v| v != 0);
    let memory = r
        .memory()
        .as_ref()
        .is_some_and(|m| nonzero(m.limit()) || nonzero(m.swap()) || nonzero(m.reservation()));
    let io = r.block_io().as_ref().is_some_and(|b| {
        b.weight().is_some_and(|w| w != 0)
            || [
                b.weight_device().as_ref().map(Vec::len),
                b.throttle_read_bps_device().as_ref().map(Vec::len),
                b.throttle_write_bps_device().as_ref().map(Vec::len),
                b.throttle_read_iops_device().as_ref().map(Vec::len),
                b.throttle_write_iops_device().as_ref().map(Vec::len),
            ]
            .iter()
            .any(|n| n.unwrap_or(0) > 0)
    });
    let cpu = r.cpu().as_ref().is_some_and(|c| {
        c.shares().is_some_and(|s| s != 0)
            || nonzero(c.quota())
            || c.period().is_some_and(|p| p != 0)
            || c.idle().is_some()
            || c.burst().is_some()
    });
    let hugetlb = r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty());
    memory || io || cpu || hugetlb
}

/// runc's check of each level's cgroup.type: below a cgroup with processes of
/// its own a new cgroup is "domain invalid" (or in a threaded subtree), where
/// domain controllers cannot be used; without them the level is made threaded.
pub fn enter_levels(mount: &Path, rel: &Path, domain: bool, made: &mut Made) -> Result<()> {
    let mut cur = mount.to_path_buf();
    let levels = rel.components().count();
    for (i, c) in rel.components().enumerate() {
        cur.push(c);
        let ty = fs::read_to_string(cur.join("cgroup.type")).unwrap_or_default();
        match ty.trim() {
            "domain invalid" if domain => bail!(
                "cannot enter cgroupv2 {cur:?} with domain controllers -- it is in an invalid state"
            ),
            "domain invalid" => {
                fs::write(cur.join("cgroup.type"), "threaded")
                    .with_context(|| format!("make {} threaded", cur.display()))?;
                if i + 1 < levels {
                    enable_all(&cur, made);
                }
            }
            t @ ("domain threaded" | "threaded") if domain => {
                bail!("cannot enter cgroupv2 {cur:?} with domain controllers -- it is in {t} mode")
            }
            _ => {}
        }
    }
    Ok(())
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), runc's linear formula.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262144) - 2) * 9999 / 262142
}

/// blkio.weight (10..1000) to io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990
}

/// memory.swap.max from the OCI memory+swap value and the memory limit, with
/// runc's rules: memory -1 without a swap value lifts swap too, -1 and 0 (unset)
/// pass through, so does any swap under unlimited memory; else the difference.
pub fn swap_max(limit: Option<i64>, swap: Option<i64>) -> Result<i64> {
    let (l, s) = (limit.unwrap_or(0), swap.unwrap_or(0));
    Ok(match (l, s) {
        (-1, 0) => -1,
        (_, -1 | 0) | (-1, _) => s,
        (0, _) => bail!("{F}.memory.swap: unable to set swap limit without memory limit"),
        (l, _) if l < 0 => bail!("{F}.memory.limit: invalid memory value: {l}"),
        (l, s) if s < l => bail!(
            "{F}.memory.swap: memory+swap limit should be >= memory limit (memory+swap {s}, memory {l})"
        ),
        (l, s) => s - l,
    })
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

pub fn plan(r: &LinuxResources) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    if let Some(c) = r.cpu() {
        cpu(&mut w, c)?;
    }
    if let Some(m) = r.memory() {
        memory(&mut w, m)?;
    }
    if let Some(p) = r.pids() {
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        w.push(Write::new(&format!("{F}.pids.limit"), "", "pids.max", v));
    }
    if let Some(b) = r.block_io() {
        io(&mut w, b);
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let size = page_size(h.page_size())?;
        w.push(Write::new(
            &format!("{F}.hugepageLimits[{i}]"),
            "",
            &format!("hugetlb.{size}.max"),
            h.limit(),
        ));
    }
    if r.network().is_some() {
        crate::logger::warn(&format!(
            "{F}.network: net_cls/net_prio do not exist on cgroup v2; ignored"
        ));
    }
    for (dev, limit) in r.rdma().iter().flatten() {
        w.push(Write::new(
            &format!("{F}.rdma.{dev}"),
            "",
            "rdma.max",
            rdma_line(dev, limit.hca_handles(), limit.hca_objects()),
        ));
    }
    let mut keys: Vec<_> = r.unified().iter().flatten().collect();
    keys.sort();
    for (k, v) in keys {
        w.push(Write::new(&format!("{F}.unified.{k}"), "", k, v));
    }
    Ok(w)
}

fn cpu(w: &mut Vec<Write>, c: &LinuxCpu) -> Result<()> {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        w.push(Write::new(
            &format!("{F}.cpu.shares"),
            "",
            "cpu.weight",
            shares_to_weight(s),
        ));
    }
    let quota = c.quota().filter(|q| *q != 0);
    let period = c.period().filter(|p| *p != 0);
    if quota.is_some() || period.is_some() {
        let mut v = quota.map_or("max".to_string(), max_or);
        if let Some(p) = period {
            v.push_str(&format!(" {p}"));
        }
        w.push(Write::new(&format!("{F}.cpu.quota"), "", "cpu.max", v));
    }
    if let Some(b) = c.burst() {
        w.push(Write::new(
            &format!("{F}.cpu.burst"),
            "",
            "cpu.max.burst",
            b,
        ));
    }
    if c.realtime_runtime().is_some_and(|r| r != 0) || c.realtime_period().is_some_and(|p| p != 0) {
        bail!("{F}.cpu.realtimeRuntime: realtime scheduling limits are not supported on cgroup v2");
    }
    if let Some(i) = c.idle() {
        w.push(Write::new(&format!("{F}.cpu.idle"), "", "cpu.idle", i));
    }
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        w.push(Write::new(
            &format!("{F}.cpu.cpus"),
            "",
            "cpuset.cpus",
            cpus,
        ));
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        w.push(Write::new(
            &format!("{F}.cpu.mems"),
            "",
            "cpuset.mems",
            mems,
        ));
    }
    Ok(())
}

fn memory(w: &mut Vec<Write>, m: &LinuxMemory) -> Result<()> {
    let swap = swap_max(m.limit(), m.swap())?;
    // As runc: memory.swap.max first; 0 only when swap is asked to be off
    // (memory+swap equal to memory); off or unlimited need no swap accounting.
    let swap_value = match swap {
        0 if m.swap().is_some_and(|s| s > 0) => Some("0".to_string()),
        0 => None,
        s => Some(max_or(s)),
    };
    if let Some(s) = swap_value {
        let quiet = s == "0" || s == "max";
        let sw = Write::new(&format!("{F}.memory.swap"), "", "memory.swap.max", s);
        w.push(if quiet { sw.skip_if_missing() } else { sw });
    }
    if let Some(l) = m.limit().filter(|l| *l != 0) {
        w.push(Write::new(
            &format!("{F}.memory.limit"),
            "",
            "memory.max",
            max_or(l),
        ));
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        w.push(Write::new(
            &format!("{F}.memory.reservation"),
            "",
            "memory.low",
            max_or(r),
        ));
    }
    let ignored = [
        ("kernel", m.kernel().is_some()),
        ("kernelTCP", m.kernel_tcp().is_some()),
        ("swappiness", m.swappiness().is_some()),
        ("disableOOMKiller", m.disable_oom_killer() == Some(true)),
    ];
    for (name, set) in ignored {
        if set {
            crate::logger::warn(&format!(
                "{F}.memory.{name}: not available on cgroup v2; ignored"
            ));
        }
    }
    Ok(())
}

fn io(w: &mut Vec<Write>, b: &LinuxBlockIo) {
    if let Some(x) = b.weight().filter(|x| *x != 0) {
        w.push(
            Write::new(&format!("{F}.blockIO.weight"), "", "io.bfq.weight", x)
                .or("io.weight", format!("default {}", blkio_to_io_weight(x))),
        );
    }
    if b.leaf_weight().is_some() {
        crate::logger::warn(&format!(
            "{F}.blockIO.leafWeight: not available on cgroup v2; ignored"
        ));
    }
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        if let Some(x) = d.weight() {
            let dev = format!("{}:{}", d.major(), d.minor());
            w.push(
                Write::new(
                    &format!("{F}.blockIO.weightDevice[{i}].weight"),
                    "",
                    "io.bfq.weight",
                    format!("{dev} {x}"),
                )
                .or("io.weight", format!("{dev} {}", blkio_to_io_weight(x))),
            );
        }
    }
    let throttles = [
        (
            "throttleReadBpsDevice",
            "rbps",
            b.throttle_read_bps_device(),
        ),
        (
            "throttleWriteBpsDevice",
            "wbps",
            b.throttle_write_bps_device(),
        ),
        (
            "throttleReadIOPSDevice",
            "riops",
            b.throttle_read_iops_device(),
        ),
        (
            "throttleWriteIOPSDevice",
            "wiops",
            b.throttle_write_iops_device(),
        ),
    ];
    for (field, key, list) in throttles {
        for (i, d) in list.iter().flatten().enumerate() {
            w.push(Write::new(
                &format!("{F}.blockIO.{field}[{i}]"),
                "",
                "io.max",
                format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10000);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(swap_max(Some(100), Some(300)).unwrap(), 200);
        assert_eq!(swap_max(Some(100), Some(100)).unwrap(), 0);
        assert_eq!(swap_max(Some(100), Some(-1)).unwrap(), -1);
        assert_eq!(swap_max(Some(-1), None).unwrap(), -1);
        assert_eq!(swap_max(Some(-1), Some(300)).unwrap(), 300);
        assert!(swap_max(None, Some(300)).is_err());
        assert!(swap_max(Some(300), Some(100)).is_err());
        assert_eq!(swap_max(Some(100), None).unwrap(), 0);
    }

    #[test]
    fn domain_controllers_as_runc_counts_them() {
        let d = |json: &str| uses_domain_controllers(&serde_json::from_str(json).unwrap());
        assert!(!d(
            r#"{"pids":{"limit":5},"cpu":{"cpus":"0"},"unified":{"memory.high":"1"}}"#
        ));
        assert!(!d(r#"{"memory":{"limit":0},"cpu":{"shares":0}}"#));
        assert!(d(r#"{"memory":{"reservation":5}}"#));
        assert!(d(r#"{"cpu":{"idle":0}}"#));
        assert!(d(
            r#"{"blockIO":{"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1}]}}"#
        ));
        assert!(d(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#));
    }

    #[test]
    fn cpu_max_and_memory() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"cpu":{"shares":1024,"quota":-1,"period":100000},"memory":{"limit":-1}}"#,
        )
        .unwrap();
        let p: Vec<_> = plan(&r)
            .unwrap()
            .into_iter()
            .map(|w| w.targets[0].clone())
            .collect();
        assert_eq!(
            p,
            [
                ("cpu.weight".to_string(), "39".to_string()),
                ("cpu.max".into(), "max 100000".into()),
                ("memory.swap.max".into(), "max".into()),
                ("memory.max".into(), "max".into()),
            ]
        );
    }
}
