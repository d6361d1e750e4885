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
    for key in ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb"] {
        data.entry(key).or_insert_with(|| json!({}));
    }
    data.insert("intel_rdt".into(), json!({}));
    data.insert("network_interfaces".into(), Value::Null);
    omit_like_go(&mut data);
    Value::Object(data)
}

/// runc's types.Stats leaves out zero fields marked omitempty / omitzero;
/// the same fields are left out here, so that both print the same document.
fn omit_like_go(data: &mut Map<String, Value>) {
    if let Some(cpu) = data.get_mut("cpu").and_then(Value::as_object_mut) {
        if let Some(u) = cpu.get_mut("usage").and_then(Value::as_object_mut) {
            omit_empty(u, &["total", "percpu", "percpu_kernel", "percpu_user"]);
        }
        if let Some(t) = cpu.get_mut("throttling").and_then(Value::as_object_mut) {
            omit_empty(t, &["periods", "throttledPeriods", "throttledTime"]);
        }
        omit_zero(cpu, &["usage", "throttling"]);
    }
    if let Some(c) = data.get_mut("cpuset").and_then(Value::as_object_mut) {
        omit_empty(c, &["cpus", "mems"]);
    }
    if let Some(m) = data.get_mut("memory").and_then(Value::as_object_mut) {
        for entry in ["usage", "swap", "kernel", "kernelTCP"] {
            if let Some(e) = m.get_mut(entry).and_then(Value::as_object_mut) {
                omit_empty(e, &["usage", "max"]);
            }
        }
        omit_empty(m, &["cache", "raw"]);
        omit_zero(m, &["usage", "swap", "kernel", "kernelTCP"]);
    }
    if let Some(p) = data.get_mut("pids").and_then(Value::as_object_mut) {
        omit_empty(p, &["current", "limit"]);
    }
    if let Some(b) = data.get_mut("blkio").and_then(Value::as_object_mut) {
        for list in b.values_mut().filter_map(Value::as_array_mut) {
            for e in list.iter_mut().filter_map(Value::as_object_mut) {
                omit_empty(e, &["major", "minor", "op", "value"]);
            }
        }
        let keys: Vec<String> = b.keys().cloned().collect();
        omit_empty(b, &keys.iter().map(String::as_str).collect::<Vec<_>>());
    }
    if let Some(h) = data.get_mut("hugetlb").and_then(Value::as_object_mut) {
        for e in h.values_mut().filter_map(Value::as_object_mut) {
            omit_empty(e, &["usage", "max"]);
        }
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
        Value::Bool(b) => !b,
    }
}

/// Go's omitempty: 0, "", empty list or map.
fn omit_empty(m: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        let empty = m.get(*k).is_some_and(|v| match v {
            Value::Object(o) => o.is_empty(),
            other => is_zero(other),
        });
        if empty {
            m.remove(*k);
        }
    }
}

/// Go's omitzero on a struct: every field zero.
fn omit_zero(m: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        if m.get(*k).is_some_and(is_zero) {
            m.remove(*k);
        }
    }
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
    if let Some(d) = cg.v1_dir("cpuset") {
        data.insert("cpuset".into(), cpuset_v1(d));
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

fn cpuset_v1(d: &Path) -> Value {
    let mut out = Map::new();
    out.insert(
        "cpus".into(),
        json!(cpu_list(&read(d, "cpuset.cpus").unwrap_or_default())),
    );
    out.insert(
        "cpu_exclusive".into(),
        json!(num(d, "cpuset.cpu_exclusive")),
    );
    out.insert(
        "mems".into(),
        json!(cpu_list(&read(d, "cpuset.mems").unwrap_or_default())),
    );
    for f in [
        "mem_hardwall",
        "mem_exclusive",
        "memory_migrate",
        "memory_spread_page",
        "memory_spread_slab",
        "memory_pressure",
        "sched_load_balance",
    ] {
        out.insert(f.into(), json!(num(d, &format!("cpuset.{f}"))));
    }
    let level = read(d, "cpuset.sched_relax_domain_level")
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    out.insert("sched_relax_domain_level".into(), json!(level));
    Value::Object(out)
}

/// "0-2,5" -> [0, 1, 2, 5].
fn cpu_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
            out.extend(a..=b);
        }
    }
    out
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
            "swap": swap_v2(d, num(d, "memory.current"), max("memory.max")),
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

/// As runc on v2 (and what v1 callers such as containerd expect): memory+swap,
/// the swap-only files plus memory's. Without swap accounting the swap part is
/// zero. runc adds the limits with Go's wrapping arithmetic when only memory is
/// unlimited; here the sum stops at unlimited instead.
fn swap_v2(d: &Path, mem_usage: u64, mem_limit: u64) -> Value {
    let (usage, limit) = match read(d, "memory.swap.current") {
        Some(u) => (
            u.trim().parse::<u64>().unwrap_or(0),
            read(d, "memory.swap.max")
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(u64::MAX),
        ),
        None => (0, 0),
    };
    let limit = if limit == u64::MAX {
        limit
    } else {
        limit.saturating_add(mem_limit)
    };
    json!({"limit": limit, "usage": usage + mem_usage, "failcnt": 0})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_swap_is_memory_plus_swap() {
        let d = std::env::temp_dir().join(format!("paddock-swap-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        // No swap accounting: memory alone.
        assert_eq!(
            swap_v2(&d, 7, 100),
            json!({"limit": 100, "usage": 7, "failcnt": 0})
        );
        fs::write(d.join("memory.swap.current"), "3\n").unwrap();
        fs::write(d.join("memory.swap.max"), "50\n").unwrap();
        assert_eq!(swap_v2(&d, 7, 100)["limit"], 150);
        assert_eq!(swap_v2(&d, 7, 100)["usage"], 10);
        assert_eq!(swap_v2(&d, 7, u64::MAX)["limit"], u64::MAX);
        fs::write(d.join("memory.swap.max"), "max\n").unwrap();
        assert_eq!(swap_v2(&d, 7, 100)["limit"], u64::MAX);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn cpu_lists_expand() {
        assert_eq!(cpu_list("0-2,5\n"), [0, 1, 2, 5]);
        assert!(cpu_list("").is_empty());
    }

    #[test]
    fn zero_fields_are_left_out_as_runc_does() {
        let mut data = json!({
            "cpu": {"usage": {"total": 0, "percpu": [], "kernel": 0, "user": 0},
                    "throttling": {"periods": 0}},
            "memory": {"cache": 0, "usage": {"limit": 5, "usage": 0, "max": 0, "failcnt": 0},
                       "swap": {"limit": 0, "failcnt": 0}},
            "pids": {"current": 1, "limit": 0},
            "blkio": {"ioServicedRecursive": []},
        });
        omit_like_go(data.as_object_mut().unwrap());
        assert_eq!(
            data,
            json!({"cpu": {}, "memory": {"usage": {"limit": 5, "failcnt": 0}},
                   "pids": {"current": 1}, "blkio": {}})
        );
    }
}
