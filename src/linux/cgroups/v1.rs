//! linux.resources as cgroup v1 file writes (pure: no file is touched here).

use anyhow::Result;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxDevice, LinuxMemory, LinuxResources};

use super::devices;
use super::resources::{page_size, Write};

const F: &str = "linux.resources";

/// `cur_limit` is the current memory.limit_in_bytes: it decides whether the
/// memory+swap limit must move before or after the memory limit.
/// `devs` (linux.devices) is None for `update`, which sets device rules only when given.
pub fn plan(
    r: &LinuxResources,
    devs: Option<&[LinuxDevice]>,
    cur_limit: i64,
) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    if let Some(c) = r.cpu() {
        cpu(&mut w, c);
    }
    if let Some(m) = r.memory() {
        memory(&mut w, m, cur_limit);
    }
    if let Some(p) = r.pids() {
        // As runc 1.5: 0 is a real limit, written as 1 (systemd cannot say 0).
        let v = match p.limit() {
            n if n > 0 => n.to_string(),
            0 => "1".into(),
            _ => "max".into(),
        };
        w.push(Write::new(
            &format!("{F}.pids.limit"),
            "pids",
            "pids.max",
            v,
        ));
    }
    if let Some(b) = r.block_io() {
        blkio(&mut w, b);
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let size = page_size(h.page_size())?;
        w.push(Write::new(
            &format!("{F}.hugepageLimits[{i}]"),
            "hugetlb",
            &format!("hugetlb.{size}.limit_in_bytes"),
            h.limit(),
        ));
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            w.push(Write::new(
                &format!("{F}.network.classID"),
                "net_cls",
                "net_cls.classid",
                id,
            ));
        }
        for (i, p) in n.priorities().iter().flatten().enumerate() {
            w.push(Write::new(
                &format!("{F}.network.priorities[{i}]"),
                "net_prio",
                "net_prio.ifpriomap",
                format!("{} {}", p.name(), p.priority()),
            ));
        }
    }
    for (dev, limit) in r.rdma().iter().flatten() {
        w.push(Write::new(
            &format!("{F}.rdma.{dev}"),
            "rdma",
            "rdma.max",
            rdma_line(dev, limit.hca_handles(), limit.hca_objects()),
        ));
    }
    // At create the device allow-list is always set on v1, like runc: deny all, then allow.
    if devs.is_some() || r.devices().is_some() {
        w.extend(devices::plan_v1(
            r.devices().as_deref().unwrap_or_default(),
            devs.unwrap_or_default(),
        ));
    }
    let mut keys: Vec<_> = r.unified().iter().flatten().collect();
    keys.sort();
    for (k, v) in keys {
        // Only files of a hybrid host's unified hierarchy can take these.
        w.push(Write::new(&format!("{F}.unified.{k}"), "", k, v));
    }
    Ok(w)
}

pub fn rdma_line(dev: &str, handles: Option<u32>, objects: Option<u32>) -> String {
    let mut line = dev.to_string();
    if let Some(h) = handles {
        line.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = objects {
        line.push_str(&format!(" hca_object={o}"));
    }
    line
}

fn cpu(w: &mut Vec<Write>, c: &LinuxCpu) {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        w.push(Write::new(
            &format!("{F}.cpu.shares"),
            "cpu",
            "cpu.shares",
            s,
        ));
    }
    // As runc: period and burst first; a value the kernel refuses against the
    // old quota is tried again once the new quota is in.
    if let Some(p) = c.period().filter(|p| *p != 0) {
        w.push(Write::new(&format!("{F}.cpu.period"), "cpu", "cpu.cfs_period_us", p).retry_later());
    }
    if let Some(b) = c.burst() {
        w.push(
            Write::new(&format!("{F}.cpu.burst"), "cpu", "cpu.cfs_burst_us", b)
                .skip_if_missing()
                .retry_later(),
        );
    }
    if let Some(q) = c.quota().filter(|q| *q != 0) {
        w.push(Write::new(
            &format!("{F}.cpu.quota"),
            "cpu",
            "cpu.cfs_quota_us",
            q,
        ));
    }
    if let Some(i) = c.idle() {
        w.push(Write::new(&format!("{F}.cpu.idle"), "cpu", "cpu.idle", i));
    }
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        w.push(
            Write::new(
                &format!("{F}.cpu.realtimePeriod"),
                "cpu",
                "cpu.rt_period_us",
                p,
            )
            .retry_later(),
        );
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
        w.push(Write::new(
            &format!("{F}.cpu.realtimeRuntime"),
            "cpu",
            "cpu.rt_runtime_us",
            r,
        ));
    }
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        w.push(Write::new(
            &format!("{F}.cpu.cpus"),
            "cpuset",
            "cpuset.cpus",
            cpus,
        ));
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        w.push(Write::new(
            &format!("{F}.cpu.mems"),
            "cpuset",
            "cpuset.mems",
            mems,
        ));
    }
}

fn memory(w: &mut Vec<Write>, m: &LinuxMemory, cur_limit: i64) {
    let limit = m.limit().unwrap_or(0);
    let mut swap = m.swap().unwrap_or(0);
    // As runc: an unlimited memory limit without a swap value lifts memsw too
    // (where the kernel has it), else the kernel refuses memory > memsw.
    let implied_swap = limit == -1 && swap == 0;
    if implied_swap {
        swap = -1;
    }
    let limit_w = (limit != 0).then(|| {
        Write::new(
            &format!("{F}.memory.limit"),
            "memory",
            "memory.limit_in_bytes",
            limit,
        )
    });
    let swap_w = (swap != 0).then(|| {
        let w = Write::new(
            &format!("{F}.memory.swap"),
            "memory",
            "memory.memsw.limit_in_bytes",
            swap,
        );
        if implied_swap {
            w.skip_if_missing()
        } else {
            w
        }
    });
    // memory.limit_in_bytes <= memory.memsw.limit_in_bytes at every step: memsw
    // goes first when it becomes unlimited or grows past the current limit.
    let swap_first = limit != 0 && swap != 0 && (swap == -1 || cur_limit < swap);
    if swap_first {
        w.extend(swap_w);
        w.extend(limit_w);
    } else {
        w.extend(limit_w);
        w.extend(swap_w);
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        w.push(Write::new(
            &format!("{F}.memory.reservation"),
            "memory",
            "memory.soft_limit_in_bytes",
            r,
        ));
    }
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        crate::logger::warn("Kernel memory settings are ignored and will be removed");
    }
    if let Some(s) = m.swappiness() {
        w.push(Write::new(
            &format!("{F}.memory.swappiness"),
            "memory",
            "memory.swappiness",
            s,
        ));
    }
    if m.disable_oom_killer() == Some(true) {
        w.push(Write::new(
            &format!("{F}.memory.disableOOMKiller"),
            "memory",
            "memory.oom_control",
            1,
        ));
    }
    if let Some(h) = m.use_hierarchy() {
        w.push(
            Write::new(
                &format!("{F}.memory.useHierarchy"),
                "memory",
                "memory.use_hierarchy",
                u8::from(h),
            )
            .warn_if_missing(),
        );
    }
}

fn blkio(w: &mut Vec<Write>, b: &LinuxBlockIo) {
    if let Some(x) = b.weight().filter(|x| *x != 0) {
        w.push(
            Write::new(&format!("{F}.blockIO.weight"), "blkio", "blkio.weight", x)
                .or("blkio.bfq.weight", x),
        );
    }
    if let Some(x) = b.leaf_weight().filter(|x| *x != 0) {
        w.push(Write::new(
            &format!("{F}.blockIO.leafWeight"),
            "blkio",
            "blkio.leaf_weight",
            x,
        ));
    }
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        let dev = format!("{}:{}", d.major(), d.minor());
        if let Some(x) = d.weight() {
            w.push(
                Write::new(
                    &format!("{F}.blockIO.weightDevice[{i}].weight"),
                    "blkio",
                    "blkio.weight_device",
                    format!("{dev} {x}"),
                )
                .or("blkio.bfq.weight_device", format!("{dev} {x}")),
            );
        }
        if let Some(x) = d.leaf_weight() {
            w.push(Write::new(
                &format!("{F}.blockIO.weightDevice[{i}].leafWeight"),
                "blkio",
                "blkio.leaf_weight_device",
                format!("{dev} {x}"),
            ));
        }
    }
    let throttles = [
        (
            "throttleReadBpsDevice",
            "read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "throttleWriteBpsDevice",
            "write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "throttleReadIOPSDevice",
            "read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "throttleWriteIOPSDevice",
            "write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    for (field, file, list) in throttles {
        for (i, d) in list.iter().flatten().enumerate() {
            w.push(Write::new(
                &format!("{F}.blockIO.{field}[{i}]"),
                "blkio",
                &format!("blkio.throttle.{file}"),
                format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(json: &str, cur: i64) -> Vec<(String, String)> {
        let r: LinuxResources = serde_json::from_str(json).unwrap();
        plan(&r, Some(&[]), cur)
            .unwrap()
            .into_iter()
            .filter(|w| w.ctrl != "devices")
            .map(|w| w.targets[0].clone())
            .collect()
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn memory_order_keeps_limit_below_memsw() {
        let json = r#"{"memory":{"limit":1000,"swap":2000}}"#;
        assert_eq!(
            files(json, 500),
            [
                pair("memory.memsw.limit_in_bytes", "2000"),
                pair("memory.limit_in_bytes", "1000")
            ]
        );
        assert_eq!(
            files(json, 5000),
            [
                pair("memory.limit_in_bytes", "1000"),
                pair("memory.memsw.limit_in_bytes", "2000")
            ]
        );
    }

    #[test]
    fn unlimited_memory_lifts_memsw_first() {
        let w: Vec<Write> = plan(
            &serde_json::from_str(r#"{"memory":{"limit":-1}}"#).unwrap(),
            None,
            1 << 26,
        )
        .unwrap();
        assert_eq!(w[0].targets[0], pair("memory.memsw.limit_in_bytes", "-1"));
        assert_eq!(w[0].missing, super::super::resources::Missing::Skip);
        assert_eq!(w[1].targets[0], pair("memory.limit_in_bytes", "-1"));
    }

    #[test]
    fn pids_zero_is_one() {
        assert_eq!(files(r#"{"pids":{"limit":0}}"#, 0), [pair("pids.max", "1")]);
    }

    #[test]
    fn cpu_and_pids() {
        assert_eq!(
            files(
                r#"{"cpu":{"shares":512,"quota":5000,"period":10000,"cpus":"0"},"pids":{"limit":-1}}"#,
                0
            ),
            [
                pair("cpu.shares", "512"),
                pair("cpu.cfs_period_us", "10000"),
                pair("cpu.cfs_quota_us", "5000"),
                pair("cpuset.cpus", "0"),
                pair("pids.max", "max"),
            ]
        );
    }

    #[test]
    fn blkio_falls_back_to_bfq() {
        let r: LinuxResources =
            serde_json::from_str(r#"{"blockIO":{"weight":300,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":100}]}}"#)
                .unwrap();
        let p = plan(&r, None, 0).unwrap();
        assert_eq!(p[0].targets[1], pair("blkio.bfq.weight", "300"));
        assert_eq!(
            p[1].targets[0],
            pair("blkio.throttle.read_bps_device", "8:0 100")
        );
    }
}
