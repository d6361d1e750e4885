//! linux.resources as systemd unit properties, with runc's mapping (v1 and v2
//! differ). What has no property is still written to the cgroup files by
//! resources.rs. The annotations' properties are in systemd_annotations.rs.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType as Type, LinuxResources};

use super::v2;
use crate::linux::dbus::wire::Value;

pub type Prop = (String, Value);

const DEFAULT_PERIOD: u64 = 100_000;
const INFINITY: u64 = u64::MAX;

fn prop(name: &str, v: Value) -> Prop {
    (name.to_string(), v)
}

/// As runc: systemd keeps CPU quota per second in 10 ms steps, so a quota
/// that is not one is rounded up, and the files get the rounded value too.
pub fn round_cpu_quota(r: &mut LinuxResources) {
    let Some(mut cpu) = r.cpu().clone() else {
        return;
    };
    let Some(quota) = cpu.quota().filter(|q| *q > 0) else {
        return;
    };
    let period = cpu.period().filter(|p| *p != 0).unwrap_or(DEFAULT_PERIOD);
    let per_sec = quota as u64 * 1_000_000 / period;
    if !per_sec.is_multiple_of(10_000) {
        let per_sec = (per_sec / 10_000 + 1) * 10_000;
        cpu.set_quota(Some((per_sec * period / 1_000_000) as i64));
        r.set_cpu(Some(cpu));
    }
}

fn cpu_quota(props: &mut Vec<Prop>, quota: i64, period: u64, version: &mut dyn FnMut() -> u32) {
    if period != 0 && version() >= 242 {
        props.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
    }
    if quota != 0 || period != 0 {
        let per_sec = if quota > 0 {
            let p = if period == 0 { DEFAULT_PERIOD } else { period };
            quota as u64 * 1_000_000 / p
        } else {
            INFINITY
        };
        props.push(prop("CPUQuotaPerSecUSec", Value::U64(per_sec)));
    }
}

/// "0-2,4" as systemd's CPU/NUMA bitmask: bytes, lowest CPU in bit 0 of byte 0.
pub fn range_to_bits(list: &str) -> Result<Vec<u8>> {
    let mut bits: Vec<u8> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: usize = a
            .trim()
            .parse()
            .with_context(|| format!("bad range {part:?}"))?;
        let b: usize = b
            .trim()
            .parse()
            .with_context(|| format!("bad range {part:?}"))?;
        if b < a || b > 65535 {
            bail!("bad range {part:?}");
        }
        if bits.len() <= b / 8 {
            bits.resize(b / 8 + 1, 0);
        }
        for n in a..=b {
            bits[n / 8] |= 1 << (n % 8);
        }
    }
    if bits.is_empty() {
        bail!("empty list");
    }
    Ok(bits)
}

fn bytes(b: Vec<u8>) -> Value {
    Value::Array("y".into(), b.into_iter().map(Value::Byte).collect())
}

fn cpuset(
    props: &mut Vec<Prop>,
    key: &str,
    name: &str,
    list: &str,
    version: &mut dyn FnMut() -> u32,
) -> Result<()> {
    let bits = range_to_bits(list).with_context(|| format!("{key}={list:?} conversion error"))?;
    if version() >= 244 {
        props.push(prop(name, bytes(bits)));
    }
    Ok(())
}

fn tasks_max(limit: i64) -> u64 {
    match limit {
        l if l < 0 => INFINITY,
        // systemd does not take 0.
        0 => 1,
        l => l as u64,
    }
}

/// The unit properties for `r`; `version` gives systemd's version (asked only when needed).
pub fn resource_props(
    r: &LinuxResources,
    v2: bool,
    version: &mut dyn FnMut() -> u32,
) -> Result<Vec<Prop>> {
    let mut p = Vec::new();
    let mem = r.memory().as_ref();
    let limit = mem.and_then(|m| m.limit()).filter(|l| *l != 0);
    let cpu = r.cpu().as_ref();
    if v2 {
        if let Some(l) = limit {
            p.push(prop("MemoryMax", Value::U64(l as u64)));
        }
        if let Some(l) = mem.and_then(|m| m.reservation()).filter(|l| *l != 0) {
            p.push(prop("MemoryLow", Value::U64(l as u64)));
        }
        if let Some(m) = mem {
            let swap = v2::swap_max(m.limit(), m.swap())?;
            if swap != 0 {
                p.push(prop("MemorySwapMax", Value::U64(swap as u64)));
            }
        }
        let idle = cpu.and_then(|c| c.idle()) == Some(1) && version() >= 252;
        if idle {
            p.push(prop("CPUWeight", Value::U64(0)));
        }
        if let Some(s) = cpu.and_then(|c| c.shares()).filter(|s| *s != 0) {
            if idle {
                crate::logger::warn(
                    "unable to apply both CPUWeight and CpuIdle to systemd, ignoring CPUWeight",
                );
            } else {
                p.push(prop("CPUWeight", Value::U64(v2::shares_to_weight(s))));
            }
        }
    } else {
        if let Some(l) = limit {
            p.push(prop("MemoryLimit", Value::U64(l as u64)));
        }
        if let Some(s) = cpu.and_then(|c| c.shares()).filter(|s| *s != 0) {
            p.push(prop("CPUShares", Value::U64(s)));
        }
    }
    let quota = cpu.and_then(|c| c.quota()).unwrap_or(0);
    let period = cpu.and_then(|c| c.period()).unwrap_or(0);
    cpu_quota(&mut p, quota, period, version);
    if !v2 {
        if let Some(w) = r
            .block_io()
            .as_ref()
            .and_then(|b| b.weight())
            .filter(|w| *w != 0)
        {
            p.push(prop("BlockIOWeight", Value::U64(u64::from(w))));
        }
    }
    if let Some(l) = r.pids().as_ref().map(|p| p.limit()) {
        p.push(prop("TasksMax", Value::U64(tasks_max(l))));
    }
    if let Some(cpus) = cpu.and_then(|c| c.cpus().clone()).filter(|s| !s.is_empty()) {
        cpuset(&mut p, "resources.CPU.Cpus", "AllowedCPUs", &cpus, version)?;
    }
    if let Some(mems) = cpu.and_then(|c| c.mems().clone()).filter(|s| !s.is_empty()) {
        cpuset(
            &mut p,
            "resources.CPU.Mems",
            "AllowedMemoryNodes",
            &mems,
            version,
        )?;
    }
    if v2 {
        if let Some(u) = r.unified() {
            unified_props(&mut p, u, version)?;
        }
    }
    Ok(p)
}

/// The device rules (devices::effective's list: deny all, the config's, the
/// defaults) as DevicePolicy/DeviceAllow, as runc maps them: an allow-list
/// becomes `strict` with one entry per rule ("/dev/char/1:3", "char-136",
/// "char-*"); everything allowed is `auto`; a deny-list systemd cannot say
/// becomes deny-all, with runc's warning. The rules are read in order with a
/// simple model of the kernel's list: an "a" rule resets it, a deny removes
/// the same rule.
pub fn device_props(rules: &[LinuxDeviceCgroup]) -> Vec<Prop> {
    let entries = |list: Vec<Value>| Value::Array("(ss)".into(), list);
    let mut default_allow = false;
    let mut list: Vec<&LinuxDeviceCgroup> = Vec::new();
    for r in rules {
        let all =
            r.typ().unwrap_or(Type::A) == Type::A && r.major().is_none() && r.minor().is_none();
        if all {
            default_allow = r.allow();
            list.clear();
        } else if r.allow() != default_allow {
            list.push(r);
        } else {
            list.retain(|l| (l.typ(), l.major(), l.minor()) != (r.typ(), r.major(), r.minor()));
        }
    }
    let reset = prop("DeviceAllow", entries(vec![]));
    if default_allow {
        if list.is_empty() {
            return vec![reset, prop("DevicePolicy", Value::Str("auto".into()))];
        }
        crate::logger::warn(
            "systemd doesn't support blacklist device rules -- applying temporary deny-all rule",
        );
        return vec![reset, prop("DevicePolicy", Value::Str("strict".into()))];
    }
    let mut allow = Vec::new();
    for r in list {
        let prefix = match r.typ() {
            Some(Type::C) => "char",
            Some(Type::B) => "block",
            _ => continue,
        };
        let path = match (r.major(), r.minor()) {
            (None, None) => format!("{prefix}-*"),
            (None, Some(_)) => {
                crate::logger::warn(&format!(
                    "systemd doesn't support '*:n' device rules -- temporarily ignoring rule: {}",
                    super::devices::rule_line(r)
                ));
                continue;
            }
            (Some(major), None) => format!("{prefix}-{major}"),
            (Some(major), Some(minor)) => format!("/dev/{prefix}/{major}:{minor}"),
        };
        let access = r.access().clone().unwrap_or_default();
        allow.push(Value::Struct(vec![Value::Str(path), Value::Str(access)]));
    }
    vec![
        reset,
        prop("DevicePolicy", Value::Str("strict".into())),
        prop("DeviceAllow", entries(allow)),
    ]
}

/// linux.resources.unified keys systemd has a property for (runc's list).
fn unified_props(
    p: &mut Vec<Prop>,
    u: &HashMap<String, String>,
    version: &mut dyn FnMut() -> u32,
) -> Result<()> {
    let num = |k: &str, v: &str| -> Result<u64> {
        if v == "max" {
            return Ok(INFINITY);
        }
        v.parse()
            .with_context(|| format!("unified resource {k:?} value conversion error"))
    };
    let idle = u.get("cpu.idle").map(|v| v.trim()) == Some("1");
    let mut keys: Vec<&String> = u.keys().collect();
    keys.sort();
    for k in keys {
        let v = u[k].trim();
        match k.as_str() {
            "cpu.idle" if v == "1" && version() >= 252 => p.push(prop("CPUWeight", Value::U64(0))),
            "cpu.max" => {
                let f: Vec<&str> = v.split_whitespace().collect();
                if f.is_empty() || f.len() > 2 {
                    bail!("unified resource {k:?} value invalid: {v:?}");
                }
                let quota = if f[0] == "max" {
                    0
                } else {
                    f[0].parse().with_context(|| {
                        format!("unified resource {k:?} period value conversion error")
                    })?
                };
                let period = match f.get(1) {
                    Some(s) => s.parse().with_context(|| {
                        format!("unified resource {k:?} quota value conversion error")
                    })?,
                    None => DEFAULT_PERIOD,
                };
                cpu_quota(p, quota, period, version);
            }
            "cpu.weight" => {
                if idle && version() >= 252 {
                    crate::logger::warn("unable to apply both cpu.weight and cpu.idle to systemd, ignoring cpu.weight");
                    continue;
                }
                let n = v
                    .parse()
                    .with_context(|| format!("unified resource {k:?} value conversion error"))?;
                p.push(prop("CPUWeight", Value::U64(n)));
            }
            "cpuset.cpus" => cpuset(
                p,
                &format!("unified resource {k:?}"),
                "AllowedCPUs",
                v,
                version,
            )?,
            "cpuset.mems" => cpuset(
                p,
                &format!("unified resource {k:?}"),
                "AllowedMemoryNodes",
                v,
                version,
            )?,
            "memory.high" | "memory.low" | "memory.min" | "memory.max" | "memory.swap.max" => {
                let name = match k.as_str() {
                    "memory.high" => "MemoryHigh",
                    "memory.low" => "MemoryLow",
                    "memory.min" => "MemoryMin",
                    "memory.max" => "MemoryMax",
                    _ => "MemorySwapMax",
                };
                p.push(prop(name, Value::U64(num(k, v)?)));
            }
            "pids.max" => p.push(prop("TasksMax", Value::U64(num(k, v)?.max(1)))),
            "memory.oom.group" if version() >= 253 => match v {
                "0" => p.push(prop("OOMPolicy", Value::Str("continue".into()))),
                "1" => p.push(prop("OOMPolicy", Value::Str("kill".into()))),
                _ => {}
            },
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn names(p: &[Prop]) -> Vec<String> {
        p.iter().map(|(k, v)| format!("{k}={v:?}")).collect()
    }

    #[test]
    fn v2_mapping_as_runc() {
        let r = res(
            r#"{"memory":{"limit":104857600,"swap":209715200,"reservation":1048576},
            "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0-1"},"pids":{"limit":0}}"#,
        );
        let p = names(&resource_props(&r, true, &mut || 252).unwrap());
        assert_eq!(
            p,
            [
                "MemoryMax=U64(104857600)",
                "MemoryLow=U64(1048576)",
                "MemorySwapMax=U64(104857600)",
                "CPUWeight=U64(39)",
                "CPUQuotaPeriodUSec=U64(100000)",
                "CPUQuotaPerSecUSec=U64(500000)",
                "TasksMax=U64(1)",
                "AllowedCPUs=Array(\"y\", [Byte(3)])",
            ]
        );
    }

    #[test]
    fn v1_mapping_as_runc() {
        let r = res(
            r#"{"memory":{"limit":1000},"cpu":{"shares":512},"blockIO":{"weight":300},"pids":{"limit":-1}}"#,
        );
        let p = names(&resource_props(&r, false, &mut || 252).unwrap());
        assert_eq!(
            p,
            [
                "MemoryLimit=U64(1000)",
                "CPUShares=U64(512)",
                "BlockIOWeight=U64(300)",
                "TasksMax=U64(18446744073709551615)",
            ]
        );
    }

    #[test]
    fn quota_rounds_up_to_ten_milliseconds_per_second() {
        let mut r = res(r#"{"cpu":{"quota":12345,"period":100000}}"#);
        round_cpu_quota(&mut r);
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(13000));
        let mut r = res(r#"{"cpu":{"quota":50000}}"#);
        round_cpu_quota(&mut r);
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(50000));
    }

    #[test]
    fn unified_keys_and_old_systemd() {
        let r = res(
            r#"{"unified":{"memory.high":"max","pids.max":"0","cpu.max":"max 50000","io.weight":"5"}}"#,
        );
        let p = names(&resource_props(&r, true, &mut || 241).unwrap());
        assert_eq!(
            p,
            [
                "CPUQuotaPerSecUSec=U64(18446744073709551615)",
                "MemoryHigh=U64(18446744073709551615)",
                "TasksMax=U64(1)",
            ]
        );
    }

    #[test]
    fn device_rules_as_runc_gives_them_to_systemd() {
        let defaults = super::super::devices::effective(&[], &[]);
        let p = names(&device_props(&defaults));
        assert_eq!(p[1], "DevicePolicy=Str(\"strict\")");
        assert!(
            p[2].contains("Str(\"/dev/char/1:3\"), Str(\"rwm\")"),
            "{}",
            p[2]
        );
        assert!(p[2].contains("Str(\"char-136\"), Str(\"rwm\")"), "{}", p[2]);
        assert!(p[2].contains("Str(\"char-*\"), Str(\"m\")"), "{}", p[2]);
        let all: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"access":"rwm"}]"#,
        )
        .unwrap();
        let p = names(&device_props(&all));
        assert_eq!(p[1], "DevicePolicy=Str(\"auto\")");
        let deny: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":true,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":3,"access":"rwm"}]"#,
        )
        .unwrap();
        let p = names(&device_props(&deny));
        assert_eq!(p.len(), 2);
        assert_eq!(p[1], "DevicePolicy=Str(\"strict\")");
    }

    #[test]
    fn bitmask_of_cpu_lists() {
        assert_eq!(range_to_bits("0-2,4").unwrap(), [0b10111]);
        assert_eq!(range_to_bits("9").unwrap(), [0, 2]);
        assert!(range_to_bits("3-1").is_err());
        assert!(range_to_bits("").is_err());
    }
}
