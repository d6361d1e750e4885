//! Resource usage for `events`, shaped like runc's `types.Stats`
//! (cpu, memory, pids, blkio, hugetlb), from v1 or v2 cgroup files.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::Cgroup;

/// USER_HZ: cpuacct.stat counts in these ticks.
const TICKS_PER_SEC: u64 = 100;

pub fn collect(cg: &Cgroup) -> Value {
    let mut data = if cg.is_pure_v2() {
        cg.v2_dir().map(v2).unwrap_or_default()
    } else {
        v1(cg)
    };
    data.insert("intel_rdt".into(), json!({}));
    data.insert("network_interfaces".into(), Value::Null);
    Value::Object(data)
}

fn read(dir: &Path, file: &str) -> Option<String> {
    fs::read_to_string(dir.join(file)).ok()
}

fn num(dir: &Path, file: &str) -> u64 {
    read(dir, file)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// "key value" lines (memory.stat, cpu.stat).
fn kv(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn list(dir: &Path, file: &str) -> Vec<u64> {
    read(dir, file)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

fn v1(cg: &Cgroup) -> Map<String, Value> {
    let mut data = Map::new();
    let mut cpu = Map::new();
    if let Some(d) = cg.v1_dir("cpuacct") {
        let stat = kv(d, "cpuacct.stat");
        let ns = |t: u64| t * (1_000_000_000 / TICKS_PER_SEC);
        cpu.insert(
            "usage".into(),
            json!({
                "total": num(d, "cpuacct.usage"),
                "percpu": list(d, "cpuacct.usage_percpu"),
                "percpu_kernel": list(d, "cpuacct.usage_percpu_sys"),
                "percpu_user": list(d, "cpuacct.usage_percpu_user"),
                "kernel": ns(stat.get("system").copied().unwrap_or(0)),
                "user": ns(stat.get("user").copied().unwrap_or(0)),
            }),
        );
    }
    if let Some(d) = cg.v1_dir("cpu") {
        let s = kv(d, "cpu.stat");
        cpu.insert("throttling".into(), throttling(&s, 1));
    }
    data.insert("cpu".into(), Value::Object(cpu));
    if let Some(d) = cg.v1_dir("memory") {
        let entry = |p: &str| {
            json!({
                "limit": num(d, &format!("{p}limit_in_bytes")),
                "usage": num(d, &format!("{p}usage_in_bytes")),
                "max": num(d, &format!("{p}max_usage_in_bytes")),
                "failcnt": num(d, &format!("{p}failcnt")),
            })
        };
        let raw = kv(d, "memory.stat");
        data.insert(
            "memory".into(),
            json!({
                "cache": raw.get("cache").copied().unwrap_or(0),
                "usage": entry("memory."),
                "swap": entry("memory.memsw."),
                "kernel": entry("memory.kmem."),
                "kernelTCP": entry("memory.kmem.tcp."),
                "raw": raw,
            }),
        );
    }
    if let Some(d) = cg.v1_dir("pids") {
        data.insert("pids".into(), pids(d));
    }
    if let Some(d) = cg.v1_dir("blkio") {
        data.insert(
            "blkio".into(),
            json!({
                "ioServiceBytesRecursive": blkio_v1(d, "blkio.throttle.io_service_bytes_recursive"),
                "ioServicedRecursive": blkio_v1(d, "blkio.throttle.io_serviced_recursive"),
            }),
        );
    }
    if let Some(d) = cg.v1_dir("hugetlb") {
        data.insert(
            "hugetlb".into(),
            hugetlb(d, "limit_in_bytes", "usage_in_bytes"),
        );
    }
    data
}

fn throttling(s: &BTreeMap<String, u64>, time_scale: u64) -> Value {
    let g = |k: &str| s.get(k).copied().unwrap_or(0);
    let time = if time_scale == 1 {
        g("throttled_time")
    } else {
        g("throttled_usec") * time_scale
    };
    json!({
        "periods": g("nr_periods"),
        "throttledPeriods": g("nr_throttled"),
        "throttledTime": time,
    })
}

fn pids(d: &Path) -> Value {
    let limit = read(d, "pids.max")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    json!({ "current": num(d, "pids.current"), "limit": limit })
}

/// "8:0 Read 4096" lines; the "Total" line is left out.
fn blkio_v1(d: &Path, file: &str) -> Vec<Value> {
    read(d, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (maj, min) = f.first()?.split_once(':')?;
            Some(json!({
                "major": maj.parse::<u64>().ok()?,
                "minor": min.parse::<u64>().ok()?,
                "op": f.get(1)?,
                "value": f.get(2)?.parse::<u64>().ok()?,
            }))
        })
        .collect()
}

fn hugetlb(d: &Path, limit: &str, usage: &str) -> Value {
    let mut out = Map::new();
    for e in fs::read_dir(d).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|s| s.strip_suffix(&format!(".{limit}")))
        else {
            continue;
        };
        if size.contains('.') {
            continue;
        }
        out.insert(
            size.to_string(),
            json!({
                "usage": num(d, &format!("hugetlb.{size}.{usage}")),
                "max": num(d, &format!("hugetlb.{size}.{limit}")),
                "failcnt": 0,
            }),
        );
    }
    Value::Object(out)
}

fn v2(d: &Path) -> Map<String, Value> {
    let mut data = Map::new();
    let s = kv(d, "cpu.stat");
    let g = |k: &str| s.get(k).copied().unwrap_or(0);
    data.insert(
        "cpu".into(),
        json!({
            "usage": {
                "total": g("usage_usec") * 1000,
                "kernel": g("system_usec") * 1000,
                "user": g("user_usec") * 1000,
            },
            "throttling": throttling(&s, 1000),
        }),
    );
    let max = |f: &str| {
        read(d, f)
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    };
    let raw = kv(d, "memory.stat");
    let events = kv(d, "memory.events");
    data.insert(
        "memory".into(),
        json!({
            "cache": raw.get("file").copied().unwrap_or(0),
            "usage": {
                "limit": max("memory.max"),
                "usage": num(d, "memory.current"),
                "max": num(d, "memory.peak"),
                "failcnt": events.get("max").copied().unwrap_or(0),
            },
            "swap": {
                "limit": max("memory.swap.max"),
                "usage": num(d, "memory.swap.current"),
                "failcnt": 0,
            },
            "raw": raw,
        }),
    );
    data.insert("pids".into(), pids(d));
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for line in read(d, "io.stat").unwrap_or_default().lines() {
        let mut f = line.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|x| x.split_once(':')) else {
            continue;
        };
        let (Ok(maj), Ok(min)) = (maj.parse::<u64>(), min.parse::<u64>()) else {
            continue;
        };
        for kvp in f {
            let Some((k, v)) = kvp.split_once('=') else {
                continue;
            };
            let v: u64 = v.parse().unwrap_or(0);
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(json!({"major": maj, "minor": min, "op": op, "value": v}));
        }
    }
    data.insert(
        "blkio".into(),
        json!({ "ioServiceBytesRecursive": bytes, "ioServicedRecursive": ios }),
    );
    data.insert("hugetlb".into(), hugetlb(d, "max", "current"));
    data
}
