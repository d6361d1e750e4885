//! The process and kernel attributes runc reads as plain strings and checks itself:
//! process.scheduler, process.ioPriority, process.execCPUAffinity, linux.personality,
//! linux.memoryPolicy and linux.netDevices. They are read from the JSON and taken out
//! before the typed parse: oci-spec misnames some of the spec's values
//! (SCHED_FLAG_RESET_ON_FORK) and refuses lists runc accepts (" 0, 1"). Each check
//! keeps runc 1.5's wording, after the JSON path of the field.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A process's own attributes (config.json's process, or an exec's process.json).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<Scheduler>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_priority: Option<IoPriority>,
    #[serde(
        default,
        rename = "execCPUAffinity",
        skip_serializing_if = "Option::is_none"
    )]
    pub exec_cpu_affinity: Option<CpuAffinity>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Scheduler {
    #[serde(default)]
    pub policy: String,
    #[serde(default)]
    pub nice: i32,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub runtime: u64,
    #[serde(default)]
    pub deadline: u64,
    #[serde(default)]
    pub period: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct IoPriority {
    #[serde(default)]
    pub class: String,
    #[serde(default)]
    pub priority: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuAffinity {
    #[serde(default)]
    pub initial: String,
    #[serde(default, rename = "final")]
    pub last: String,
}

/// The container-wide ones (config.json's linux).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LinuxAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<Personality>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_policy: Option<MemoryPolicy>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub net_devices: BTreeMap<String, NetDevice>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Personality {
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub flags: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryPolicy {
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub nodes: String,
    #[serde(default)]
    pub flags: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NetDevice {
    #[serde(default)]
    pub name: String,
}

/// Both, as create keeps them for later execs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    #[serde(default)]
    pub process: ProcessAttrs,
    #[serde(default)]
    pub linux: LinuxAttrs,
}

const PROCESS_KEYS: [&str; 3] = ["scheduler", "ioPriority", "execCPUAffinity"];
const LINUX_KEYS: [&str; 3] = ["personality", "memoryPolicy", "netDevices"];

/// Takes the attributes out of config.json's JSON; true when it had any of them.
pub fn take(config: &mut Value) -> Result<(Attrs, bool)> {
    let mut attrs = Attrs::default();
    let mut taken = false;
    if let Some(p) = config.get_mut("process").and_then(Value::as_object_mut) {
        let part = remove_keys(p, &PROCESS_KEYS);
        taken |= !part.is_empty();
        attrs.process = decode("process", part)?;
    }
    if let Some(l) = config.get_mut("linux").and_then(Value::as_object_mut) {
        let part = remove_keys(l, &LINUX_KEYS);
        taken |= !part.is_empty();
        attrs.linux = decode("linux", part)?;
    }
    Ok((attrs, taken))
}

/// The same for an exec's process.json, taken out of `process`.
pub fn take_process(process: &mut Value) -> Result<ProcessAttrs> {
    let Some(p) = process.as_object_mut() else {
        return Ok(ProcessAttrs::default());
    };
    let part = remove_keys(p, &PROCESS_KEYS);
    let attrs: ProcessAttrs = decode("--process", part)?;
    attrs.validate("--process: ")?;
    Ok(attrs)
}

fn remove_keys(
    obj: &mut serde_json::Map<String, Value>,
    keys: &[&str],
) -> serde_json::Map<String, Value> {
    keys.iter()
        .filter_map(|k| obj.remove(*k).map(|v| (k.to_string(), v)))
        .collect()
}

fn decode<T: serde::de::DeserializeOwned>(
    at: &str,
    part: serde_json::Map<String, Value>,
) -> Result<T> {
    serde_path_to_error::deserialize(Value::Object(part))
        .map_err(|e| anyhow::anyhow!("{at}.{}: {}", e.path(), e.inner()))
}

impl ProcessAttrs {
    /// These, each one not set taken from `defaults`.
    pub fn or(self, defaults: &ProcessAttrs) -> ProcessAttrs {
        ProcessAttrs {
            scheduler: self.scheduler.or_else(|| defaults.scheduler.clone()),
            io_priority: self.io_priority.or_else(|| defaults.io_priority.clone()),
            exec_cpu_affinity: self
                .exec_cpu_affinity
                .or_else(|| defaults.exec_cpu_affinity.clone()),
        }
    }

    /// runc's checks; `at` prefixes the field path ("" or "--process: ").
    pub fn validate(&self, at: &str) -> Result<()> {
        if let Some(s) = &self.scheduler {
            check_scheduler(s).with_context(|| format!("{at}process.scheduler"))?;
        }
        if let Some(io) = &self.io_priority {
            check_io_priority(io).with_context(|| format!("{at}process.ioPriority"))?;
        }
        if let Some(a) = &self.exec_cpu_affinity {
            cpu_set(&a.initial)
                .context("bad CPUAffinity.Initial")
                .with_context(|| format!("{at}process.execCPUAffinity.initial"))?;
            cpu_set(&a.last)
                .context("bad CPUAffinity.Final")
                .with_context(|| format!("{at}process.execCPUAffinity.final"))?;
        }
        Ok(())
    }
}

impl LinuxAttrs {
    /// runc's checks; `has_netns`: the container has a network namespace (new or joined).
    pub fn validate(&self, has_netns: bool) -> Result<()> {
        if let Some(p) = &self.personality {
            personality_domain(&p.domain).context("linux.personality.domain")?;
            if !p.flags.is_empty() {
                // runc 1.5 warns and goes on: the spec defines no flag yet.
                crate::logger::warn(&format!(
                    "ignoring unsupported personality flags: [{}] because personality flag has not supported at this time",
                    p.flags.join(" ")
                ));
            }
        }
        if let Some(m) = &self.memory_policy {
            memory_policy(m).context("linux.memoryPolicy")?;
        }
        if !self.net_devices.is_empty() {
            check_net_devices(&self.net_devices, has_netns).context("linux.netDevices")?;
        }
        Ok(())
    }
}

/// sched_setattr's policy numbers (linux/sched.h).
pub fn sched_policy(name: &str) -> Result<u32> {
    Ok(match name {
        "SCHED_OTHER" => 0,
        "SCHED_FIFO" => 1,
        "SCHED_RR" => 2,
        "SCHED_BATCH" => 3,
        "SCHED_ISO" => 4,
        "SCHED_IDLE" => 5,
        "SCHED_DEADLINE" => 6,
        _ => bail!("invalid scheduler policy: {name}"),
    })
}

/// sched_setattr's flag bits (linux/sched.h).
pub fn sched_flag(name: &str) -> Result<u64> {
    Ok(match name {
        "SCHED_FLAG_RESET_ON_FORK" => 0x01,
        "SCHED_FLAG_RECLAIM" => 0x02,
        "SCHED_FLAG_DL_OVERRUN" => 0x04,
        "SCHED_FLAG_KEEP_POLICY" => 0x08,
        "SCHED_FLAG_KEEP_PARAMS" => 0x10,
        "SCHED_FLAG_UTIL_CLAMP_MIN" => 0x20,
        "SCHED_FLAG_UTIL_CLAMP_MAX" => 0x40,
        _ => bail!("invalid scheduler flag: {name}"),
    })
}

fn check_scheduler(s: &Scheduler) -> Result<()> {
    if s.policy.is_empty() {
        bail!("scheduler policy is required");
    }
    if (s.policy == "SCHED_OTHER" || s.policy == "SCHED_BATCH") && !(-20..=19).contains(&s.nice) {
        bail!(
            "invalid scheduler.nice: {} when scheduler.policy is {}",
            s.nice,
            s.policy
        );
    }
    if s.priority != 0 && s.policy != "SCHED_FIFO" && s.policy != "SCHED_RR" {
        bail!("scheduler.priority can only be specified for SchedFIFO or SchedRR policy");
    }
    if s.policy != "SCHED_DEADLINE" && (s.runtime != 0 || s.deadline != 0 || s.period != 0) {
        bail!("scheduler runtime/deadline/period can only be specified for SchedDeadline policy");
    }
    // runc finds these two only in init, where they fail the same create.
    sched_policy(&s.policy)?;
    for f in &s.flags {
        sched_flag(f)?;
    }
    Ok(())
}

/// ioprio_set's class numbers (linux/ioprio.h).
pub fn io_priority_class(name: &str) -> Result<i32> {
    Ok(match name {
        "IOPRIO_CLASS_RT" => 1,
        "IOPRIO_CLASS_BE" => 2,
        "IOPRIO_CLASS_IDLE" => 3,
        _ => bail!("invalid ioPriority.Class: {name:?}"),
    })
}

fn check_io_priority(io: &IoPriority) -> Result<()> {
    if !(0..=7).contains(&io.priority) {
        bail!("invalid ioPriority.Priority: {}", io.priority);
    }
    io_priority_class(&io.class)?;
    Ok(())
}

/// personality(2) domains: PER_LINUX and PER_LINUX32.
pub fn personality_domain(name: &str) -> Result<libc::c_ulong> {
    match name {
        "LINUX" => Ok(0x0000),
        "LINUX32" => Ok(0x0008),
        _ => bail!("invalid personality domain {name}"),
    }
}

/// The highest CPU or NUMA node number a list may name (runc's sanity limit).
pub const MAX_CPU: u32 = 64 * 1024;

/// A list such as "0-3,5, 7" as a bit mask in 64-bit words (runc's parser: spaces
/// around and empty elements are allowed); None for "".
pub fn cpu_set(list: &str) -> Result<Option<Vec<u64>>> {
    if list.is_empty() {
        return Ok(None);
    }
    let number = |s: &str| -> Result<u32> {
        let n: u32 = s
            .parse()
            .with_context(|| format!("parsing {s:?}: invalid syntax"))?;
        if n > MAX_CPU {
            bail!("values larger than {MAX_CPU} are not supported");
        }
        Ok(n)
    };
    let mut ranges = Vec::new();
    for part in list.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (start, end) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(part)?, number(part)?),
        };
        if start > end {
            bail!("invalid range: {part}");
        }
        ranges.push((start, end));
    }
    let Some(max) = ranges.iter().map(|r| r.1).max() else {
        bail!("no members found in set {list:?}");
    };
    let mut words = vec![0u64; max as usize / 64 + 1];
    for (start, end) in ranges {
        for i in start..=end {
            words[i as usize / 64] |= 1 << (i % 64);
        }
    }
    Ok(Some(words))
}

/// set_mempolicy's mode and flag numbers (linux/mempolicy.h), and the node mask.
pub struct MemoryPolicyPlan {
    pub mode: libc::c_int,
    pub nodes: Option<Vec<u64>>,
}

/// set_mempolicy's modes (linux/mempolicy.h), sorted by name as `features` lists them.
pub const MEMORY_POLICY_MODES: [(&str, libc::c_int); 7] = [
    ("MPOL_BIND", 2),
    ("MPOL_DEFAULT", 0),
    ("MPOL_INTERLEAVE", 3),
    ("MPOL_LOCAL", 4),
    ("MPOL_PREFERRED", 1),
    ("MPOL_PREFERRED_MANY", 5),
    ("MPOL_WEIGHTED_INTERLEAVE", 6),
];

/// Its mode flags.
pub const MEMORY_POLICY_FLAGS: [(&str, libc::c_int); 3] = [
    ("MPOL_F_NUMA_BALANCING", 1 << 13),
    ("MPOL_F_RELATIVE_NODES", 1 << 14),
    ("MPOL_F_STATIC_NODES", 1 << 15),
];

fn lookup(table: &[(&str, libc::c_int)], name: &str) -> Option<libc::c_int> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

pub fn memory_policy(m: &MemoryPolicy) -> Result<MemoryPolicyPlan> {
    let Some(mode) = lookup(&MEMORY_POLICY_MODES, &m.mode) else {
        bail!("invalid memory policy mode {:?}", m.mode);
    };
    let nodes =
        cpu_set(&m.nodes).with_context(|| format!("invalid memory policy nodes {:?}", m.nodes))?;
    let mut flags = 0;
    for f in &m.flags {
        let Some(flag) = lookup(&MEMORY_POLICY_FLAGS, f) else {
            bail!("invalid memory policy flag {f:?}");
        };
        flags |= flag;
    }
    let count: u32 = nodes.iter().flatten().map(|w| w.count_ones()).sum();
    match mode {
        0 | 4 if count != 0 => bail!("memory policy mode requires 0 nodes but got {count}"),
        2 | 3 | 5 | 6 if count == 0 => {
            bail!("memory policy mode requires at least one node but got 0")
        }
        _ => {}
    }
    Ok(MemoryPolicyPlan {
        mode: mode | flags,
        nodes,
    })
}

/// A name the kernel accepts for an interface (net/core/dev.c dev_valid_name);
/// runc also lets a 16-byte name through, which the kernel then refuses.
fn valid_device_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name.contains(['/', ':', ' '])
}

fn check_net_devices(devices: &BTreeMap<String, NetDevice>, has_netns: bool) -> Result<()> {
    if !has_netns {
        bail!("unable to move network devices without a NET namespace");
    }
    for (name, dev) in devices {
        if !valid_device_name(name) {
            bail!("invalid network device name {name:?}");
        }
        if !dev.name.is_empty() && !valid_device_name(&dev.name) {
            bail!("invalid network device name {:?}", dev.name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Result<Attrs> {
        take(&mut v.clone()).map(|(a, _)| a)
    }

    #[test]
    fn takes_the_fields_out_and_leaves_the_rest() {
        let v = json!({"process": {"args": ["sh"], "scheduler": {"policy": "SCHED_BATCH"}},
                       "linux": {"personality": {"domain": "LINUX32"}, "sysctl": {}}});
        let mut rest = v.clone();
        let (a, taken) = take(&mut rest).unwrap();
        assert!(taken);
        assert_eq!(a.process.scheduler.unwrap().policy, "SCHED_BATCH");
        assert_eq!(a.linux.personality.unwrap().domain, "LINUX32");
        assert_eq!(
            rest,
            json!({"process": {"args": ["sh"]}, "linux": {"sysctl": {}}})
        );
        let (_, taken) = take(&mut json!({"process": {}})).unwrap();
        assert!(!taken);
    }

    #[test]
    fn type_errors_name_the_field() {
        let e = attrs(json!({"process": {"ioPriority": {"priority": "x"}}})).unwrap_err();
        assert!(
            e.to_string().starts_with("process.ioPriority.priority: "),
            "{e}"
        );
    }

    fn process_err(p: Value) -> String {
        let a: ProcessAttrs = serde_json::from_value(p).unwrap();
        format!("{:#}", a.validate("").unwrap_err())
    }

    #[test]
    fn scheduler_checks_have_runcs_words() {
        let e = process_err(json!({"scheduler": {}}));
        assert_eq!(e, "process.scheduler: scheduler policy is required");
        let e = process_err(json!({"scheduler": {"policy": "SCHED_OTHER", "nice": 20}}));
        assert!(e.ends_with("invalid scheduler.nice: 20 when scheduler.policy is SCHED_OTHER"));
        let e = process_err(json!({"scheduler": {"policy": "SCHED_OTHER", "priority": 1}}));
        assert!(
            e.ends_with("scheduler.priority can only be specified for SchedFIFO or SchedRR policy")
        );
        let e = process_err(json!({"scheduler": {"policy": "SCHED_FIFO", "runtime": 1}}));
        assert!(e.ends_with("can only be specified for SchedDeadline policy"));
        let e = process_err(json!({"scheduler": {"policy": "SCHED_X"}}));
        assert!(e.ends_with("invalid scheduler policy: SCHED_X"));
        let e = process_err(json!({"scheduler": {"policy": "SCHED_RR", "flags": ["F"]}}));
        assert!(e.ends_with("invalid scheduler flag: F"));
    }

    #[test]
    fn io_priority_checks_have_runcs_words() {
        let e = process_err(json!({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}}));
        assert_eq!(e, "process.ioPriority: invalid ioPriority.Priority: 8");
        let e = process_err(json!({"ioPriority": {"priority": 1}}));
        assert_eq!(e, "process.ioPriority: invalid ioPriority.Class: \"\"");
    }

    #[test]
    fn an_exec_takes_what_its_process_does_not_set_from_the_config() {
        let own: ProcessAttrs =
            serde_json::from_value(json!({"scheduler": {"policy": "SCHED_IDLE"}})).unwrap();
        let config: ProcessAttrs = serde_json::from_value(json!({
            "scheduler": {"policy": "SCHED_BATCH"}, "ioPriority": {"class": "IOPRIO_CLASS_BE"}
        }))
        .unwrap();
        let merged = own.or(&config);
        assert_eq!(merged.scheduler.unwrap().policy, "SCHED_IDLE");
        assert_eq!(merged.io_priority.unwrap().class, "IOPRIO_CLASS_BE");
        assert!(merged.exec_cpu_affinity.is_none());
    }

    #[test]
    fn cpu_lists_as_runc_reads_them() {
        assert_eq!(cpu_set("").unwrap(), None);
        assert_eq!(cpu_set("0-2, 5,,").unwrap(), Some(vec![0b100111]));
        assert_eq!(cpu_set("64").unwrap(), Some(vec![0, 1]));
        assert!(cpu_set("3-1")
            .unwrap_err()
            .to_string()
            .contains("invalid range"));
        assert!(cpu_set(" , ")
            .unwrap_err()
            .to_string()
            .contains("no members"));
        assert!(cpu_set("70000").is_err());
        assert!(cpu_set("x").is_err());
        let e = process_err(json!({"execCPUAffinity": {"final": "a"}}));
        assert!(e.starts_with("process.execCPUAffinity.final: bad CPUAffinity.Final: "));
    }

    #[test]
    fn memory_policy_checks_have_runcs_words() {
        let mp = |v: Value| {
            let m: MemoryPolicy = serde_json::from_value(v).unwrap();
            memory_policy(&m)
        };
        let e = |v: Value| mp(v).err().unwrap().to_string();
        assert_eq!(e(json!({"mode": "X"})), "invalid memory policy mode \"X\"");
        assert_eq!(
            e(json!({"mode": "MPOL_BIND"})),
            "memory policy mode requires at least one node but got 0"
        );
        assert_eq!(
            e(json!({"mode": "MPOL_LOCAL", "nodes": "0-1"})),
            "memory policy mode requires 0 nodes but got 2"
        );
        assert_eq!(
            e(json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["F"]})),
            "invalid memory policy flag \"F\""
        );
        assert!(e(json!({"mode": "MPOL_BIND", "nodes": "z"}))
            .starts_with("invalid memory policy nodes \"z\""));
        let p =
            mp(json!({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}))
                .unwrap();
        assert_eq!(p.mode, 3 | 1 << 15);
        assert_eq!(p.nodes, Some(vec![1]));
        assert!(mp(json!({"mode": "MPOL_PREFERRED"}))
            .unwrap()
            .nodes
            .is_none());
    }

    #[test]
    fn personality_and_net_devices() {
        assert_eq!(personality_domain("LINUX32").unwrap(), 8);
        assert_eq!(
            personality_domain("X").unwrap_err().to_string(),
            "invalid personality domain X"
        );
        let devs = |v: Value| -> BTreeMap<String, NetDevice> { serde_json::from_value(v).unwrap() };
        let ok = devs(json!({"eth0": {"name": "ctr0"}, "dummy1": {}}));
        check_net_devices(&ok, true).unwrap();
        assert_eq!(
            check_net_devices(&ok, false).unwrap_err().to_string(),
            "unable to move network devices without a NET namespace"
        );
        for bad in ["a/b", "a:b", "..", "a b", "0123456789abcdefg"] {
            let e = check_net_devices(&devs(json!({ bad: {} })), true).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("invalid network device name {bad:?}")
            );
            let e = check_net_devices(&devs(json!({"eth0": {"name": bad}})), true).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("invalid network device name {bad:?}")
            );
        }
    }
}
